#pragma once
// What signerd checks in a header block before it signs it: the block must end in a
// DKIM-Signature field (RFC 6376 §3.7: the field being signed comes last, without its
// trailing CRLF) that parses as a valid signature, with exactly one b= tag and that one
// empty. The caller then compares d=, s= and a= with the request and the grant.

#include <string>
#include <string_view>

#include "dkim/dkim/signature.hpp"
#include "dkim/expected.hpp"

namespace dkim::signerd {

Expected<Signature, std::string> inspect_header_block(std::string_view data);

}  // namespace dkim::signerd
