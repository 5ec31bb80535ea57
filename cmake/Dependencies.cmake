# Every dependency is a Debian package; launch/deps.sh installs the missing ones.
# A missing one stops configure with one line that names its package, which
# launch/deps.sh's ddpm_build shows instead of CMake's trace.
function(ddpm_require found package what)
  if(NOT ${found})
    # NOTICE prints the line as it is (FATAL_ERROR would wrap it).
    message(NOTICE "ddpm: missing Debian package ${package} (${what}); install it with: apt-get install ${package}")
    message(FATAL_ERROR "missing Debian package ${package}")
  endif()
endfunction()

find_package(OpenMP QUIET COMPONENTS CXX)
ddpm_require(OpenMP_CXX_FOUND "g++" "OpenMP for C++")
# oneDNN's CMake config requires OpenCL, which libdnnl-dev only recommends.
find_package(OpenCL QUIET)
ddpm_require(OpenCL_FOUND ocl-icd-opencl-dev "OpenCL headers that oneDNN's CMake config needs")
find_package(dnnl QUIET CONFIG)
ddpm_require(dnnl_FOUND libdnnl-dev "oneDNN 2.6")
find_package(HDF5 QUIET COMPONENTS C)
ddpm_require(HDF5_FOUND libhdf5-dev "HDF5 1.10")
find_package(yaml-cpp QUIET CONFIG)
ddpm_require(yaml-cpp_FOUND libyaml-cpp-dev "yaml-cpp")
find_package(MPI QUIET COMPONENTS CXX)
ddpm_require(MPI_CXX_FOUND libopenmpi-dev "Open MPI")
find_package(PNG QUIET)
ddpm_require(PNG_FOUND libpng-dev "libpng")
find_package(JPEG QUIET)
ddpm_require(JPEG_FOUND libjpeg-dev "libjpeg")
find_package(ZLIB QUIET)
ddpm_require(ZLIB_FOUND zlib1g-dev "zlib")
find_package(PkgConfig QUIET)
ddpm_require(PKG_CONFIG_FOUND pkg-config "pkg-config")
pkg_check_modules(LMDB QUIET IMPORTED_TARGET lmdb)
ddpm_require(LMDB_FOUND liblmdb-dev "LMDB")
pkg_check_modules(LIBZIP QUIET IMPORTED_TARGET libzip)
ddpm_require(LIBZIP_FOUND libzip-dev "libzip (.npz files)")
pkg_check_modules(LIBARCHIVE QUIET IMPORTED_TARGET libarchive)
ddpm_require(LIBARCHIVE_FOUND libarchive-dev "libarchive (dataset archives)")
pkg_check_modules(WEBP QUIET IMPORTED_TARGET libwebp)
ddpm_require(WEBP_FOUND libwebp-dev "libwebp")
# Header-only: the evaluation's eigendecompositions and matrix products (src/eval).
find_package(Eigen3 3.3 QUIET NO_MODULE)
ddpm_require(Eigen3_FOUND libeigen3-dev "Eigen 3")
# The Fréchet distance's eigendecompositions (LAPACKE's dsyevd) and products (CBLAS),
# both run by OpenBLAS: liblapack.so.3 is OpenBLAS's where it is installed.
pkg_check_modules(LAPACKE QUIET IMPORTED_TARGET lapacke)
ddpm_require(LAPACKE_FOUND liblapacke-dev "LAPACKE")
pkg_check_modules(OPENBLAS QUIET IMPORTED_TARGET openblas)
ddpm_require(OPENBLAS_FOUND libopenblas-dev "OpenBLAS")
# Header-only: JSON lines (ddpm_eval --json).
find_package(nlohmann_json 3 QUIET CONFIG)
ddpm_require(nlohmann_json_FOUND nlohmann-json3-dev "nlohmann-json")
find_package(Threads REQUIRED)
if(DDPM_BUILD_TESTS)
  find_package(Boost 1.74 QUIET COMPONENTS unit_test_framework)
  ddpm_require(Boost_FOUND libboost-test-dev "Boost.Test 1.74 for the tests")
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
