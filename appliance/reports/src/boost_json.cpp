// Boost.JSON's implementation, compiled once here (Debian's Boost 1.81 headers, header-only
// mode): the TLS report reader is its only user.
#include <boost/json/src.hpp>
