// Forwarders for the libcurl functions crunch-secrets calls (see curl_library.hpp). The real
// functions come from `dlopen`; until the library is loaded successfully, every forwarder fails
// the way libcurl itself reports failure (NULL handle, error code), and `load()` says why.
#define CURL_DISABLE_TYPECHECK // the forwarders below define the functions the macros wrap
#include "crunchsecrets/util/curl_library.hpp"

#include "crunchsecrets/util/error.hpp"

namespace cs::util::curl {

void load_or_throw() {
  ok_or_throw(load(), ExitCode::config, "{}");
}

} // namespace cs::util::curl

#ifdef CS_CURL_LINKED

// A self-contained build links libcurl: nothing to load.
namespace cs::util::curl {
Status load() {
  return {};
}
} // namespace cs::util::curl

#else

#include <cstdarg>
#include <curl/curl.h>
#include <dlfcn.h>
#include <fmt/format.h>
#include <mutex>

#ifndef LIBCURL_SONAME
#define LIBCURL_SONAME "libcurl.so.4"
#endif

namespace cs::util::curl {

namespace {

// The library's functions. Types come from <curl/curl.h>, so each forwarder's call is checked.
struct Api {
  decltype(&::curl_global_init) global_init = nullptr;
  decltype(&::curl_version_info) version_info = nullptr;
  decltype(&::curl_easy_init) easy_init = nullptr;
  decltype(&::curl_easy_setopt) easy_setopt = nullptr;
  decltype(&::curl_easy_getinfo) easy_getinfo = nullptr;
  decltype(&::curl_easy_reset) easy_reset = nullptr;
  decltype(&::curl_easy_cleanup) easy_cleanup = nullptr;
  decltype(&::curl_easy_strerror) easy_strerror = nullptr;
  decltype(&::curl_slist_append) slist_append = nullptr;
  decltype(&::curl_slist_free_all) slist_free_all = nullptr;
  decltype(&::curl_multi_init) multi_init = nullptr;
  decltype(&::curl_multi_setopt) multi_setopt = nullptr;
  decltype(&::curl_multi_add_handle) multi_add_handle = nullptr;
  decltype(&::curl_multi_remove_handle) multi_remove_handle = nullptr;
  decltype(&::curl_multi_perform) multi_perform = nullptr;
  decltype(&::curl_multi_info_read) multi_info_read = nullptr;
  decltype(&::curl_multi_poll) multi_poll = nullptr;
  decltype(&::curl_multi_cleanup) multi_cleanup = nullptr;
  decltype(&::curl_multi_strerror) multi_strerror = nullptr;
};

Api g_api;
Status g_status;

// Resolves `name` into `slot`; returns false (and names it in `missing`) if the library lacks it.
template <typename F>
bool resolve(void* lib, const char* name, F& slot, std::string& missing) {
  void* sym = ::dlsym(lib, name);
  if (sym == nullptr) {
    missing = name;
    return false;
  }
  // POSIX guarantees that a function's address round-trips through dlsym's void*.
  slot = reinterpret_cast<F>(sym);
  return true;
}

Status load_once() {
  // RTLD_LOCAL keeps libcurl's own dependencies out of the global symbol namespace; the
  // library stays loaded until the process execs or exits.
  void* lib = ::dlopen(LIBCURL_SONAME, RTLD_NOW | RTLD_LOCAL);
  if (lib == nullptr) {
    const char* why = ::dlerror();
    return err(fmt::format("cannot load libcurl ({}): install libcurl 7.85 or later (Debian: "
                           "apt-get install libcurl4)",
                           why != nullptr ? why : LIBCURL_SONAME));
  }
  Api api;
  std::string missing;
  const bool ok = resolve(lib, "curl_global_init", api.global_init, missing) &&
                  resolve(lib, "curl_version_info", api.version_info, missing) &&
                  resolve(lib, "curl_easy_init", api.easy_init, missing) &&
                  resolve(lib, "curl_easy_setopt", api.easy_setopt, missing) &&
                  resolve(lib, "curl_easy_getinfo", api.easy_getinfo, missing) &&
                  resolve(lib, "curl_easy_reset", api.easy_reset, missing) &&
                  resolve(lib, "curl_easy_cleanup", api.easy_cleanup, missing) &&
                  resolve(lib, "curl_easy_strerror", api.easy_strerror, missing) &&
                  resolve(lib, "curl_slist_append", api.slist_append, missing) &&
                  resolve(lib, "curl_slist_free_all", api.slist_free_all, missing) &&
                  resolve(lib, "curl_multi_init", api.multi_init, missing) &&
                  resolve(lib, "curl_multi_setopt", api.multi_setopt, missing) &&
                  resolve(lib, "curl_multi_add_handle", api.multi_add_handle, missing) &&
                  resolve(lib, "curl_multi_remove_handle", api.multi_remove_handle, missing) &&
                  resolve(lib, "curl_multi_perform", api.multi_perform, missing) &&
                  resolve(lib, "curl_multi_info_read", api.multi_info_read, missing) &&
                  resolve(lib, "curl_multi_poll", api.multi_poll, missing) &&
                  resolve(lib, "curl_multi_cleanup", api.multi_cleanup, missing) &&
                  resolve(lib, "curl_multi_strerror", api.multi_strerror, missing);
  if (!ok) {
    return err(fmt::format("{} lacks {}: install libcurl 7.85 or later", LIBCURL_SONAME, missing));
  }
  // The transports set options that need 7.85 (CURLOPT_PROTOCOLS_STR among them); an older
  // library would reject them one by one, so it is refused as a whole.
  const curl_version_info_data* v = api.version_info(CURLVERSION_NOW);
  if (v == nullptr || v->version_num < 0x075500) {
    return err(fmt::format("{} is libcurl {}: install libcurl 7.85 or later", LIBCURL_SONAME,
                           v != nullptr && v->version != nullptr ? v->version : "(unknown)"));
  }
  if (api.global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
    return err("cannot initialise libcurl (curl_global_init failed)");
  }
  g_api = api;
  return {};
}

// The loaded functions, or null if libcurl could not be loaded.
const Api* api() {
  static std::once_flag once;
  std::call_once(once, [] { g_status = load_once(); });
  return g_status ? &g_api : nullptr;
}

} // namespace

Status load() {
  api();
  return g_status;
}

} // namespace cs::util::curl

using cs::util::curl::api;

// The forwarders, with libcurl's own names and signatures. The parentheses around the names
// keep them from being read as calls of function-like macros.
//
// curl.h fixes the last named parameter of the three variadic ones as an enum (CURLoption,
// CURLINFO, CURLMoption), and clang's -Wvarargs flags `va_start` after any enum parameter
// because some enums change type when promoted. These three hold only values from 0 to well
// below INT_MAX, so they promote to int, of the same size and passing convention; libcurl's own
// definitions call `va_start` after the same parameters.
#ifdef __clang__
#pragma clang diagnostic push
#pragma clang diagnostic ignored "-Wvarargs"
#endif
extern "C" {

CURLcode(curl_global_init)(long /*flags*/) {
  // `api()` runs curl_global_init itself, with CURL_GLOBAL_DEFAULT, when it loads the library.
  return api() != nullptr ? CURLE_OK : CURLE_FAILED_INIT;
}

curl_version_info_data*(curl_version_info)(CURLversion age) {
  return api() != nullptr ? api()->version_info(age) : nullptr;
}

CURL*(curl_easy_init)(void) {
  return api() != nullptr ? api()->easy_init() : nullptr;
}

// libcurl reads exactly one argument after `option`, whose type the option's number range
// gives (CURLOPTTYPE_*): a long, a pointer (data, string, list or function), or a curl_off_t.
// Function pointers travel as `void*` here, which every platform libcurl runs on allows.
CURLcode(curl_easy_setopt)(CURL* handle, CURLoption option, ...) {
  if (api() == nullptr) {
    return CURLE_FAILED_INIT;
  }
  va_list ap;
  va_start(ap, option);
  CURLcode rc;
  if (option < CURLOPTTYPE_OBJECTPOINT) {
    const long value = va_arg(ap, long);
    rc = api()->easy_setopt(handle, option, value);
  } else if (option < CURLOPTTYPE_OFF_T || option >= CURLOPTTYPE_BLOB) {
    void* value = va_arg(ap, void*);
    rc = api()->easy_setopt(handle, option, value);
  } else {
    const curl_off_t value = va_arg(ap, curl_off_t);
    rc = api()->easy_setopt(handle, option, value);
  }
  va_end(ap);
  return rc;
}

// Every CURLINFO_* takes one pointer to where the answer goes.
CURLcode(curl_easy_getinfo)(CURL* handle, CURLINFO info, ...) {
  if (api() == nullptr) {
    return CURLE_FAILED_INIT;
  }
  va_list ap;
  va_start(ap, info);
  void* out = va_arg(ap, void*);
  va_end(ap);
  return api()->easy_getinfo(handle, info, out);
}

void(curl_easy_reset)(CURL* handle) {
  if (api() != nullptr) {
    api()->easy_reset(handle);
  }
}

void(curl_easy_cleanup)(CURL* handle) {
  if (api() != nullptr) {
    api()->easy_cleanup(handle);
  }
}

const char*(curl_easy_strerror)(CURLcode code) {
  return api() != nullptr ? api()->easy_strerror(code) : "libcurl could not be loaded";
}

curl_slist*(curl_slist_append)(curl_slist* list, const char* data) {
  return api() != nullptr ? api()->slist_append(list, data) : nullptr;
}

void(curl_slist_free_all)(curl_slist* list) {
  if (api() != nullptr) {
    api()->slist_free_all(list);
  }
}

CURLM*(curl_multi_init)(void) {
  return api() != nullptr ? api()->multi_init() : nullptr;
}

// Same argument rule as curl_easy_setopt (CURLMOPT_* use the CURLOPTTYPE_* ranges).
CURLMcode(curl_multi_setopt)(CURLM* multi, CURLMoption option, ...) {
  if (api() == nullptr) {
    return CURLM_INTERNAL_ERROR;
  }
  va_list ap;
  va_start(ap, option);
  CURLMcode rc;
  if (option < CURLOPTTYPE_OBJECTPOINT) {
    const long value = va_arg(ap, long);
    rc = api()->multi_setopt(multi, option, value);
  } else if (option < CURLOPTTYPE_OFF_T) {
    void* value = va_arg(ap, void*);
    rc = api()->multi_setopt(multi, option, value);
  } else {
    const curl_off_t value = va_arg(ap, curl_off_t);
    rc = api()->multi_setopt(multi, option, value);
  }
  va_end(ap);
  return rc;
}

CURLMcode(curl_multi_add_handle)(CURLM* multi, CURL* handle) {
  return api() != nullptr ? api()->multi_add_handle(multi, handle) : CURLM_INTERNAL_ERROR;
}

CURLMcode(curl_multi_remove_handle)(CURLM* multi, CURL* handle) {
  return api() != nullptr ? api()->multi_remove_handle(multi, handle) : CURLM_INTERNAL_ERROR;
}

CURLMcode(curl_multi_perform)(CURLM* multi, int* running) {
  return api() != nullptr ? api()->multi_perform(multi, running) : CURLM_INTERNAL_ERROR;
}

CURLMsg*(curl_multi_info_read)(CURLM* multi, int* left) {
  return api() != nullptr ? api()->multi_info_read(multi, left) : nullptr;
}

CURLMcode(curl_multi_poll)(CURLM* multi, curl_waitfd extra[], unsigned int count, int timeout_ms,
                           int* numfds) {
  return api() != nullptr ? api()->multi_poll(multi, extra, count, timeout_ms, numfds)
                          : CURLM_INTERNAL_ERROR;
}

CURLMcode(curl_multi_cleanup)(CURLM* multi) {
  return api() != nullptr ? api()->multi_cleanup(multi) : CURLM_INTERNAL_ERROR;
}

const char*(curl_multi_strerror)(CURLMcode code) {
  return api() != nullptr ? api()->multi_strerror(code) : "libcurl could not be loaded";
}

} // extern "C"
#ifdef __clang__
#pragma clang diagnostic pop
#endif

#endif // CS_CURL_LINKED
