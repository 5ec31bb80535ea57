# The CUDA backend (src/core/cuda): built whenever nvcc is found, unless DDPM_CUDA=OFF.
# It needs cuBLAS (with the toolkit) and cuDNN 9; NCCL is optional (the GPU all-reduce
# of src/dist). Sets DDPM_CUDA_ENABLED and DDPM_NCCL_ENABLED, and the imported
# libraries ddpm::cudnn and ddpm::nccl.
#
# Where the libraries are looked for, besides the toolkit's own folders: CUDNN_ROOT /
# NCCL_ROOT (CMake or environment variables), /usr/local/cuda-*/lib and, when python3 has
# them, the nvidia-cudnn / nvidia-nccl wheels that PyTorch installs (bench/gpu_check.sh
# relies on this on machines whose toolkit has no cuDNN).
option(DDPM_CUDA "Build the CUDA backend when nvcc is found" ON)
set(DDPM_CUDA_ENABLED OFF)
set(DDPM_NCCL_ENABLED OFF)
if(NOT DDPM_CUDA)
  message(STATUS "CUDA backend: off (DDPM_CUDA=OFF)")
  return()
endif()

# nvcc is often installed without being on the PATH.
if(NOT CMAKE_CUDA_COMPILER AND NOT DEFINED ENV{CUDACXX})
  find_program(_ddpm_nvcc_on_path nvcc)
  if(NOT _ddpm_nvcc_on_path AND EXISTS /usr/local/cuda/bin/nvcc)
    set(CMAKE_CUDA_COMPILER /usr/local/cuda/bin/nvcc)
  endif()
endif()
include(CheckLanguage)
check_language(CUDA)
if(NOT CMAKE_CUDA_COMPILER)
  message(STATUS "CUDA backend: off (no nvcc found)")
  return()
endif()

# Ampere (A100) and Hopper (H100/H200) by default; -DCMAKE_CUDA_ARCHITECTURES=... overrides.
if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES)
  set(CMAKE_CUDA_ARCHITECTURES 80 90)
endif()
enable_language(CUDA)
set(CMAKE_CUDA_STANDARD 17)
set(CMAKE_CUDA_STANDARD_REQUIRED ON)
find_package(CUDAToolkit REQUIRED)

# Extra places to look: the wheels of python3's PyTorch (nvidia/cudnn, nvidia/nccl).
set(_ddpm_wheel_roots "")
find_program(_ddpm_python3 python3)
if(_ddpm_python3)
  execute_process(
    COMMAND ${_ddpm_python3} -c "import importlib.util as u, os\nfor m in ('nvidia.cudnn', 'nvidia.nccl'):\n  try:\n    s = u.find_spec(m)\n  except Exception:\n    s = None\n  if s and s.submodule_search_locations: print(list(s.submodule_search_locations)[0])"
    OUTPUT_VARIABLE _ddpm_wheels OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET TIMEOUT 20)
  if(_ddpm_wheels)
    string(REPLACE "\n" ";" _ddpm_wheel_roots "${_ddpm_wheels}")
  endif()
endif()
file(GLOB _ddpm_cuda_dirs /usr/local/cuda-*)
set(_ddpm_roots ${CUDNN_ROOT} $ENV{CUDNN_ROOT} ${NCCL_ROOT} $ENV{NCCL_ROOT} ${CUDAToolkit_LIBRARY_ROOT}
                /usr/local/cuda ${_ddpm_cuda_dirs} ${_ddpm_wheel_roots})

find_path(CUDNN_INCLUDE_DIR cudnn.h HINTS ${_ddpm_roots} ${CUDAToolkit_INCLUDE_DIRS} PATH_SUFFIXES include)
find_library(CUDNN_LIBRARY NAMES cudnn libcudnn.so.9 HINTS ${_ddpm_roots} PATH_SUFFIXES lib64 lib)
find_path(NCCL_INCLUDE_DIR nccl.h HINTS ${_ddpm_roots} ${CUDAToolkit_INCLUDE_DIRS} PATH_SUFFIXES include)
find_library(NCCL_LIBRARY NAMES nccl libnccl.so.2 HINTS ${_ddpm_roots} PATH_SUFFIXES lib64 lib)

if(NOT CUDNN_INCLUDE_DIR OR NOT CUDNN_LIBRARY)
  message(WARNING "CUDA backend: off (nvcc found, but not cuDNN 9: set CUDNN_ROOT)")
  return()
endif()
add_library(ddpm::cudnn UNKNOWN IMPORTED)
set_target_properties(ddpm::cudnn PROPERTIES IMPORTED_LOCATION ${CUDNN_LIBRARY}
                                             INTERFACE_INCLUDE_DIRECTORIES ${CUDNN_INCLUDE_DIR})
set(DDPM_CUDA_ENABLED ON)
if(NCCL_INCLUDE_DIR AND NCCL_LIBRARY)
  add_library(ddpm::nccl UNKNOWN IMPORTED)
  set_target_properties(ddpm::nccl PROPERTIES IMPORTED_LOCATION ${NCCL_LIBRARY}
                                              INTERFACE_INCLUDE_DIRECTORIES ${NCCL_INCLUDE_DIR})
  set(DDPM_NCCL_ENABLED ON)
endif()
message(STATUS "CUDA backend: on (nvcc ${CMAKE_CUDA_COMPILER_VERSION}, architectures ${CMAKE_CUDA_ARCHITECTURES}, "
               "cuDNN ${CUDNN_LIBRARY}, NCCL ${NCCL_LIBRARY})")
