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
# across the reductions that PyTorch does in a fixed order).
target_compile_options(ddpm_flags INTERFACE $<$<AND:$<CONFIG:Release>,$<COMPILE_LANGUAGE:CXX>>:-O3>)
