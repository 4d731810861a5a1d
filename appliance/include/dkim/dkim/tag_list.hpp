#pragma once
// RFC 6376 §3.2 tag=value lists, shared by DKIM-Signature fields and DNS key records:
//
//   tag-list  =  tag-spec *( ";" tag-spec ) [ ";" ]
//   tag-spec  =  [FWS] tag-name [FWS] "=" [FWS] tag-value [FWS]
//   tag-name  =  ALPHA *ALNUMPUNC
//   tag-value =  [ tval *( 1*(WSP / FWS) tval ) ]
//   tval      =  1*VALCHAR          ; VALCHAR = %x21-3A / %x3C-7E
//
// "Tags with duplicate names MUST NOT occur within a single tag-list; if a tag name does
// occur more than once, the entire tag-list is invalid."

#include <string>
#include <string_view>
#include <vector>

#include "dkim/expected.hpp"

namespace dkim {

struct Tag {
    std::string_view name;
    std::string_view value;  // without the surrounding FWS; inner FWS kept as written
};

class TagList {
  public:
    static Expected<TagList, std::string> parse(std::string_view text);

    // The tag's value, or nullptr when the tag is absent.
    const std::string_view* find(std::string_view name) const;
    const std::vector<Tag>& tags() const { return tags_; }

  private:
    std::vector<Tag> tags_;
};

// A tag value with all FWS removed (for base64 values such as b=, bh= and p=).
std::string strip_fws(std::string_view value);

// A tag value with the FWS around it removed and none inside: for values whose grammar has no
// white space inside (d=, s=, i=, c=, l=, t=, x=, each name of a list). White space inside is
// kept, so that the value stays invalid: removing it would make "exa mple.com" or "sub ject"
// mean something that dkimpy and Mail::DKIM do not read (issue 18's review).
std::string trim_fws(std::string_view value);

// A colon-separated tag value (h=, q=, and the key record's h=, s=, t=), each entry with the
// FWS around it removed (RFC 6376: hdr-name *( *FWS ":" *FWS hdr-name )). An entry with white
// space inside keeps it, and so names no field.
std::vector<std::string> split_colon_list(std::string_view value);

}  // namespace dkim
