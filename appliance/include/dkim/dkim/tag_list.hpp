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

// A colon-separated tag value (h=, q=, and the key record's h=, s=, t=), FWS removed.
std::vector<std::string> split_colon_list(std::string_view value);

}  // namespace dkim
