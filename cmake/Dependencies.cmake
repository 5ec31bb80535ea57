# Every dependency is a Debian package; launch/test.sh installs the missing ones.
find_package(OpenMP REQUIRED COMPONENTS CXX)
find_package(dnnl REQUIRED CONFIG)                       # libdnnl-dev (oneDNN 2.6)
find_package(HDF5 REQUIRED COMPONENTS C)                 # libhdf5-dev
find_package(yaml-cpp REQUIRED CONFIG)                   # libyaml-cpp-dev
find_package(MPI REQUIRED COMPONENTS CXX)                # libopenmpi-dev
find_package(PNG REQUIRED)                               # libpng-dev
find_package(JPEG REQUIRED)                              # libjpeg-dev
find_package(ZLIB REQUIRED)                              # zlib1g-dev
find_package(PkgConfig REQUIRED)
pkg_check_modules(LMDB REQUIRED IMPORTED_TARGET lmdb)    # liblmdb-dev
pkg_check_modules(WEBP REQUIRED IMPORTED_TARGET libwebp) # libwebp-dev
find_package(Threads REQUIRED)
if(DDPM_BUILD_TESTS)
  find_package(Boost 1.74 REQUIRED COMPONENTS unit_test_framework)
endif()

# yaml-cpp's config names its target yaml-cpp (0.7) or yaml-cpp::yaml-cpp (0.8).
if(TARGET yaml-cpp::yaml-cpp)
  set(DDPM_YAML_TARGET yaml-cpp::yaml-cpp)
else()
  set(DDPM_YAML_TARGET yaml-cpp)
endif()

add_library(ddpm_hdf5 INTERFACE)
target_include_directories(ddpm_hdf5 INTERFACE ${HDF5_INCLUDE_DIRS})
target_link_libraries(ddpm_hdf5 INTERFACE ${HDF5_C_LIBRARIES})
target_compile_definitions(ddpm_hdf5 INTERFACE ${HDF5_DEFINITIONS} H5_USE_110_API)
