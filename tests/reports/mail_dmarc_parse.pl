#!/usr/bin/perl
# The independent reader of DMARC aggregate reports that our parser (`dkim-appliance reports
# parse --json`) is compared with: Debian's Mail::DMARC (libmail-dmarc-perl 1.20211209), its
# own report parser, with no database.
#
#   tests/reports/mail_dmarc_parse.pl [-q] FILE...
#
# Each FILE may be bare XML, gzip'd XML, a zip holding the XML, or a report mail (.eml) with
# the report attached; the kind is told by the first bytes, not by the name. For each
# aggregate report Mail::DMARC reads, one JSON line on stdout, in the shape of ours:
#
#   {"kind":"aggregate","org_name","report_id","domain","begin","end",
#    "policy":{"domain","adkim","aspf","p","sp","pct"},
#    "records":[{"source_ip","count","header_from","disposition",
#                "dkim":[{"domain","selector","result"}],"spf":[{"domain","scope","result"}]}]}
#
# Keys are sorted (JSON::PP canonical); records are in document order; begin, end and count
# are integers, exactly as written however large (null, with a warning, where the text is
# not one); results and dispositions are lower-cased. Only what Mail::DMARC gives: no np (it
# does not read it), no policy_evaluated dkim/spf, no envelope_from/envelope_to, no reasons.
#
# How Mail::DMARC is driven: a report mail goes to Mail::DMARC::Report::Receive's
# from_email_simple (what `dmarc_receive --file` does), which finds the zip/gzip attachment,
# inflates it and hands the XML to handle_body. A bare, gzip'd or zip'd file goes to
# handle_body directly, after IO::Uncompress::Gunzip::gunzip / IO::Uncompress::Unzip::unzip,
# the functions from_email_simple itself uses. handle_body parses with XML::LibXML, fills a
# Mail::DMARC::Report::Aggregate and ends with report->save_aggregate, which would write to
# the SQL store: the Report object here is a subclass whose save_aggregate keeps the
# aggregate in memory instead. Nothing else of Mail::DMARC is replaced.
#
# Its warnings (carp) are gathered per file and printed on stderr as "FILE: warning (xN)";
# -q leaves them out. Exit 0 if every file gave at least one aggregate report; 2 if any could
# not be read (an error, or no aggregate report in it: a failure report, say), after
# reading all the others.
#
# What Mail::DMARC 1.20211209 can and cannot read (checked on tests/data/dmarc-reports/, the
# parsedmarc samples; see tests/reports/README.md for the evidence):
#   - reads bare XML, .xml.gz, and report mails with a zip or gzip attachment;
#   - a bare .zip: reads only its first member (IO::Uncompress::Unzip's default), as it does
#     for a zip attached to a mail;
#   - cannot read RFC 9990 (DMARCbis) reports with the urn:ietf:params:xml:ns:dmarc-2.0
#     namespace: its XPath (/feedback/...) has no namespace, finds no report_metadata and
#     dies on an undefined node;
#   - refuses a whole report in which one DKIM result is not lower case (croak "invalid DKIM
#     result": invalid/report_with_upper_cased_pass.xml), where an upper-case SPF result is
#     accepted and kept as written (lower-cased here);
#   - a record with several <dkim> (or <spf>) results: every entry repeats the first one
#     (do_node_record_auth reads ./auth_results/dkim/domain from the record, not from each
#     result, and a NodeList's string_value is its first node's). A comparison must expect
#     N copies of the first result there, not the real ones;
#   - a disposition other than lower-case none/quarantine/reject (RFC 9990's "pass",
#     "Reject") becomes "none";
#   - policy fields that are "0" or empty are left out (pct=0 is lost: `... or next`);
#   - an absent and an empty element are the same to it (string_value ''): empty DKIM/SPF
#     fields are left out here, and an empty SPF scope is not kept by Mail::DMARC either;
#   - failure (forensic) reports: only "TODO: handle forensic reports"; TLS reports: not at all.
use strict;
use warnings;

use Email::Simple;
use IO::Uncompress::Gunzip qw($GunzipError);
use IO::Uncompress::Unzip qw($UnzipError);
use JSON::PP;
use Math::BigInt;
use Mail::DMARC::Report;
use Mail::DMARC::Report::Receive;

package Oracle::Report {    ## no critic (MultiplePackages)
    use parent -norequire, 'Mail::DMARC::Report';

    # Instead of the SQL store: keep the aggregate that handle_body filled.
    sub save_aggregate {
        my $self = shift;
        push @{ $self->{saved} }, $self->aggregate;
        return 1;
    }
}

my $quiet = 0;
my @files;
for my $arg (@ARGV) {
    if    ( $arg eq '-q' || $arg eq '--quiet' ) { $quiet = 1 }
    elsif ( $arg eq '-h' || $arg eq '--help' ) {
        open my $me, "<", $0 or die "$0: $!\n";
        while (<$me>) { last if !/^#/; next if $. == 1; s/^# ?//; print }
        exit 0;
    }
    else { push @files, $arg }
}
if ( !@files ) {
    print STDERR "usage: $0 [-q] FILE...\n";
    exit 2;
}

my $json = JSON::PP->new->utf8->canonical->allow_bignum;
binmode STDOUT;
# Mail::DMARC prints (the Subject of each mail) to the selected handle: that goes nowhere,
# and the JSON lines go to STDOUT by name.
open my $devnull, '>', '/dev/null' or die "/dev/null: $!\n";

my $status = 0;
for my $file (@files) {
    my %warnings;
    my @order;
    local $SIG{__WARN__} = sub {
        my $w = shift;
        $w =~ s/ at \S+ line \d+\.?\n?\z//s;
        chomp $w;
        push @order, $w if !$warnings{$w}++;
    };
    my $reports = eval { read_file($file) };
    my $error = $@;
    select STDOUT;
    my @lines = map { $json->encode( as_json($_) ) . "\n" } @{ $reports || [] };
    if ( !$quiet ) {
        print STDERR "$file: $_" . ( $warnings{$_} > 1 ? " (x$warnings{$_})" : '' ) . "\n" for @order;
    }
    if ( !defined $reports ) {
        $error =~ s/\s+\z//;
        $error =~ s/ at \S+ line \d+\.?\z//;
        print STDERR "$file: not read: $error\n";
        $status = 2;
        next;
    }
    if ( !@$reports ) {
        print STDERR "$file: not read: Mail::DMARC found no aggregate report in it\n";
        $status = 2;
        next;
    }
    print STDOUT @lines;
}
exit $status;

sub read_file {
    my ($file) = @_;
    open my $fh, '<:raw', $file or die "cannot open: $!\n";
    my $data = do { local $/; <$fh> };
    close $fh;
    die "cannot read: $!\n" if !defined $data;

    my $recv = Mail::DMARC::Report::Receive->new;
    my $report = $recv->{report} = Oracle::Report->new;
    select $devnull;
    if ( substr( $data, 0, 2 ) eq "\x1f\x8b" ) {
        my $xml;
        IO::Uncompress::Gunzip::gunzip( \$data => \$xml ) or die "gunzip: $GunzipError\n";
        bare( $recv, $xml );
    }
    elsif ( substr( $data, 0, 4 ) eq "PK\x03\x04" ) {
        my $xml;
        IO::Uncompress::Unzip::unzip( \$data => \$xml ) or die "unzip: $UnzipError\n";
        bare( $recv, $xml );
    }
    elsif ( $data =~ /\A(?:\xef\xbb\xbf)?\s*[{\[]/ ) {
        die "JSON (a TLS report?): Mail::DMARC reads no TLS reports\n";
    }
    elsif ( $data eq '' || $data =~ /\A(?:\xef\xbb\xbf)?\s*</ ) {
        bare( $recv, $data );
    }
    else {
        $recv->from_email_simple( Email::Simple->new($data) );
    }
    select STDOUT;
    return $report->{saved} || [];
}

# What from_email_simple does around handle_body, for a report that is not in a mail.
sub bare {
    my ( $recv, $xml ) = @_;
    $recv->report->init;
    $recv->{_envelope_to} = undef;
    $recv->{_header_from} = undef;
    return $recv->handle_body($xml);
}

sub integer {
    my ( $value, $what ) = @_;
    if ( defined $value && $value =~ /\A\s*(-?\d+)\s*\z/ ) {
        # Exactly as written, however large: 2^64 must not come out as 1.8e+19.
        return length $1 > 15 ? Math::BigInt->new($1) : 0 + $1;
    }
    warn "$what is not an integer: " . ( defined $value ? "'$value'" : 'absent' ) . "\n";
    return undef;    ## no critic (ExplicitReturnUndef)
}

sub text { my $v = shift; return defined $v ? "$v" : '' }

sub as_json {
    my ($aggregate) = @_;
    my $meta = $aggregate->metadata;
    my $pp   = $aggregate->policy_published;
    my %policy;
    if ($pp) {
        for my $f (qw/ domain adkim aspf p sp pct /) {
            next if !defined $pp->{$f};
            $policy{$f} = $f eq 'pct' ? integer( $pp->{$f}, 'pct' ) : $f eq 'domain' ? "$pp->{$f}" : lc $pp->{$f};
        }
    }
    my @records;
    for my $rec ( @{ $aggregate->record } ) {
        my ( @dkim, @spf );
        for my $d ( @{ $rec->{auth_results}{dkim} || [] } ) {
            my %e;
            for my $f (qw/ domain selector result /) {
                my $v = $d->{$f};
                next if !defined $v || $v eq '';
                $e{$f} = $f eq 'result' ? lc $v : "$v";
            }
            push @dkim, \%e;
        }
        for my $s ( @{ $rec->{auth_results}{spf} || [] } ) {
            my %e;
            for my $f (qw/ domain scope result /) {
                my $v = $s->{$f};
                next if !defined $v || $v eq '';
                $e{$f} = $f eq 'domain' ? "$v" : lc $v;
            }
            push @spf, \%e;
        }
        push @records, {
            source_ip   => text( $rec->{row}{source_ip} ),
            count       => integer( $rec->{row}{count}, 'count' ),
            header_from => text( $rec->{identifiers}{header_from} ),
            disposition => lc text( $rec->{row}{policy_evaluated}{disposition} ),
            dkim        => \@dkim,
            spf         => \@spf,
        };
    }
    return {
        kind      => 'aggregate',
        org_name  => text( $meta->org_name ),
        report_id => text( $meta->report_id ),
        domain    => text( $pp ? $pp->{domain} : undef ),
        begin     => integer( $meta->begin, 'begin' ),
        end       => integer( $meta->end, 'end' ),
        policy    => \%policy,
        records   => \@records,
    };
}
