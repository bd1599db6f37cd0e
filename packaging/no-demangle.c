/* Linked into the self-contained binary only (meson.build, -Dself_contained=true).
 *
 * libstdc++'s default terminate handler is the only caller of __cxa_demangle in crunch-secrets,
 * and it pulls in the whole C++ demangler (libstdc++.a's cp-demangle.o, 47 KB) to print the type
 * of an exception nobody caught. main() catches every std::exception, so that message is
 * printed only on a bug. Defining __cxa_demangle here keeps the linker from taking the
 * demangler out of libstdc++.a: the handler then prints the mangled type name, which c++filt
 * turns back into the readable one. Status -2 is the ABI's "not a valid mangled name", which
 * the handler answers by printing the name as it is. */
#include <stddef.h>

char* __cxa_demangle(const char* mangled, char* buffer, size_t* length, int* status);

char* __cxa_demangle(const char* mangled, char* buffer, size_t* length, int* status) {
  (void)mangled;
  (void)buffer;
  (void)length;
  if (status != NULL) {
    *status = -2;
  }
  return NULL;
}
