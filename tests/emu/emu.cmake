# The CPU emulation of the CUDA backend (DENSERL_CUDA_EMU): every kernels/ and runtime/ .cu
# and .cuh file is rewritten by translate.py into the build tree, keeping its folder so that
# relative includes still meet the rewritten headers, and the results compile as C++ into
# denserl_runtime against the stand-in CUDA headers of tests/emu/include.
enable_language(CXX)
set(CMAKE_CXX_STANDARD 17)
set(CMAKE_CXX_STANDARD_REQUIRED ON)
find_package(Python3 REQUIRED COMPONENTS Interpreter)
set(_emu_dir ${CMAKE_SOURCE_DIR}/tests/emu)
file(GLOB _emu_cu CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/kernels/*.cu
     ${CMAKE_SOURCE_DIR}/runtime/*.cu ${CMAKE_SOURCE_DIR}/kernels/*.cuh
     ${CMAKE_SOURCE_DIR}/runtime/*.cuh)
set(_emu_out "")
foreach(src ${_emu_cu})
  file(RELATIVE_PATH rel ${CMAKE_SOURCE_DIR} ${src})
  if(rel MATCHES "\\.cu$")
    string(REGEX REPLACE "\\.cu$" ".cpp" rel ${rel})
  endif()
  set(out ${CMAKE_BINARY_DIR}/emu_src/${rel})
  add_custom_command(OUTPUT ${out}
    COMMAND ${Python3_EXECUTABLE} ${_emu_dir}/translate.py ${src} ${out}
    DEPENDS ${src} ${_emu_dir}/translate.py
    COMMENT "emu: ${rel}")
  list(APPEND _emu_out ${out})
endforeach()
target_sources(denserl_runtime PRIVATE ${_emu_out} ${_emu_dir}/emu_runtime.cpp
               ${_emu_dir}/emu_api.cpp ${_emu_dir}/cublas_emu.cpp)
target_compile_definitions(denserl_runtime PUBLIC DENSERL_CUDA=1)
# public: a C test that includes <cuda_runtime.h> for its timing gets the emulation's too
target_include_directories(denserl_runtime BEFORE PUBLIC ${_emu_dir}/include)
target_include_directories(denserl_runtime PRIVATE
  $<$<COMPILE_LANGUAGE:CXX>:${CMAKE_SOURCE_DIR}/kernels>
  $<$<COMPILE_LANGUAGE:CXX>:${CMAKE_SOURCE_DIR}/runtime>)
# nvcc contracts a*b+c into an fma where it sees fit (its default, --fmad=true), and so does
# g++ here (-ffp-contract=fast with -march=native's fma), though not always at the same
# places: the last bits can differ from a GPU's, as they differ between GPUs, and the tests'
# tolerances allow for it. A bit-for-bit check between two kernels thus also meets a
# compiler that contracts; the kernels that must agree to the bit round each step on its own
# (__fmul_rn and the like, never fused on either side). DENSERL_EMU_CONTRACT=OFF builds
# without contraction. The kernels read through reinterpreted pointers as CUDA code does, and
# their GPU-only idioms (unused values kept for one architecture, #pragma unroll) are not this
# build's warnings to fix.
option(DENSERL_EMU_CONTRACT "Emulation: contract a*b+c into fma as nvcc does" ON)
if(DENSERL_EMU_CONTRACT)
  set(_emu_contract -ffp-contract=fast)
else()
  set(_emu_contract -ffp-contract=off)
endif()
target_compile_options(denserl_runtime PRIVATE
  $<$<COMPILE_LANGUAGE:CXX>:-O2 ${_emu_contract} -fno-strict-aliasing -Wno-unused-parameter
  -Wno-unused-function -Wno-unused-variable -Wno-unused-but-set-variable -Wno-unknown-pragmas>)
if(DENSERL_NATIVE)
  # the kernels' fmaf as one instruction rather than a libm call
  target_compile_options(denserl_runtime PRIVATE $<$<COMPILE_LANGUAGE:CXX>:-march=native>)
endif()
target_link_libraries(denserl_runtime PUBLIC stdc++)
