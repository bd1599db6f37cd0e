// Application errors in core's namespace. The exit codes and the `Error` type are defined in
// util (util/error.hpp) so that the vault and arvados layers below core can throw them too.
#pragma once

#include "crunchsecrets/util/error.hpp"

namespace cs::core {

using util::Error;
using util::ExitCode;
using util::ok_or_throw;
using util::value_or_throw;

} // namespace cs::core
