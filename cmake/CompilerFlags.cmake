# Compiler flags shared by every target.
set(CMAKE_CXX_STANDARD 17)
set(CMAKE_CXX_STANDARD_REQUIRED ON)
set(CMAKE_CXX_EXTENSIONS OFF)
set(CMAKE_POSITION_INDEPENDENT_CODE ON)
set(CMAKE_EXPORT_COMPILE_COMMANDS ON)
if(NOT CMAKE_BUILD_TYPE AND NOT CMAKE_CONFIGURATION_TYPES)
  set(CMAKE_BUILD_TYPE Release CACHE STRING "Build type" FORCE)
endif()

add_library(ddpm_flags INTERFACE)
target_compile_options(ddpm_flags INTERFACE -Wall -Wextra -Wno-unused-parameter)
# Kernels are written for the machine they run on (AVX-512 here); DDPM_PORTABLE=ON
# builds for generic x86-64 instead (for heterogeneous clusters).
option(DDPM_PORTABLE "Build without -march=native" OFF)
if(NOT DDPM_PORTABLE)
  target_compile_options(ddpm_flags INTERFACE $<$<COMPILE_LANGUAGE:CXX>:-march=native>)
endif()
# -O3 without -ffast-math: the golden tests need IEEE semantics (no reassociation
# across the reductions that PyTorch does in a fixed order). -fno-math-errno keeps
# IEEE results (sqrt rounds the same) but lets loops that call std::sqrt vectorise:
# with errno to set, GCC leaves them scalar (the fused Adam + EMA update ran 3x slower).
target_compile_options(ddpm_flags INTERFACE $<$<AND:$<CONFIG:Release>,$<COMPILE_LANGUAGE:CXX>>:-O3>
                                            $<$<COMPILE_LANGUAGE:CXX>:-fno-math-errno>)

# clang contracts a*b+c into FMAs only within one expression, GCC everywhere: with
# clang (the sanitizer and fuzz builds) use GCC's rule, so that the finite-difference
# tolerances of the tests, tuned on the GCC build, hold for both.
if(CMAKE_CXX_COMPILER_ID MATCHES "Clang")
  add_compile_options($<$<COMPILE_LANGUAGE:C,CXX>:-ffp-contract=fast>)
endif()

# Sanitizer builds (docs/testing.md): DDPM_SANITIZE=address,undefined or thread builds
# and links every target with it. A report is fatal (no recovery), so any report fails
# the test that triggered it.
set(DDPM_SANITIZE "" CACHE STRING "Sanitizers for every target: address,undefined | thread | empty")
if(DDPM_SANITIZE)
  add_compile_options($<$<COMPILE_LANGUAGE:C,CXX>:-fsanitize=${DDPM_SANITIZE}>
                      $<$<COMPILE_LANGUAGE:C,CXX>:-fno-sanitize-recover=all>
                      $<$<COMPILE_LANGUAGE:C,CXX>:-fno-omit-frame-pointer>
                      $<$<COMPILE_LANGUAGE:C,CXX>:-g>)
  add_link_options(-fsanitize=${DDPM_SANITIZE})
  message(STATUS "Sanitizers: ${DDPM_SANITIZE}")
endif()
# libFuzzer harnesses (tests/fuzz), clang only: every target gets the coverage
# instrumentation, the harnesses link libFuzzer's main.
option(DDPM_FUZZ "Build the libFuzzer harnesses in tests/fuzz (needs clang)" OFF)
if(DDPM_FUZZ)
  if(NOT CMAKE_CXX_COMPILER_ID MATCHES "Clang")
    message(FATAL_ERROR "ddpm: DDPM_FUZZ needs clang (configure with CC=clang CXX=clang++)")
  endif()
  add_compile_options($<$<COMPILE_LANGUAGE:C,CXX>:-fsanitize=fuzzer-no-link>)
endif()
