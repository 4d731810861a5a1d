// The console's script (issue 6, in progress). No inline script anywhere: the
// Content-Security-Policy allows only this origin's own files.
