# The op harness (case table + machinery) is shared by the op test executables.
foreach(t test_ops_fd test_ops_backends test_ops_reference)
  if(TARGET ${t})
    target_sources(${t} PRIVATE ${CMAKE_CURRENT_LIST_DIR}/op_harness.cpp
                   ${CMAKE_CURRENT_LIST_DIR}/op_cases.cpp ${CMAKE_CURRENT_LIST_DIR}/op_references.cpp
                   ${CMAKE_CURRENT_LIST_DIR}/op_cases_vision.cpp
                   ${CMAKE_CURRENT_LIST_DIR}/op_references_vision.cpp
                   ${CMAKE_CURRENT_LIST_DIR}/op_cases_stage1.cpp
                   ${CMAKE_CURRENT_LIST_DIR}/op_references_stage1.cpp)
  endif()
endforeach()

# The kernel check of test_ops_cpu_blas must catch a BLAS that runs generic kernels on a CPU with
# AVX2 or AVX-512: with OpenBLAS forced to its Prescott (SSE3) kernels it has to fail.
if(TARGET test_ops_cpu_blas)
  add_test(NAME ops_blas_generic_kernel_detected
           COMMAND test_ops_cpu_blas --gtest_filter=OpsCpuBlas.KernelsUseTheCpuVectorWidth)
  set_tests_properties(ops_blas_generic_kernel_detected PROPERTIES
                       ENVIRONMENT OPENBLAS_CORETYPE=Prescott WILL_FAIL TRUE TIMEOUT 60 LABELS ops)
endif()

# `rae info` names the BLAS library, its version and the kernel family it runs with its ISA.
if(TARGET rae)
  add_test(NAME ops_rae_info_blas COMMAND rae info)
  set_tests_properties(ops_rae_info_blas PROPERTIES TIMEOUT 60 LABELS ops PASS_REGULAR_EXPRESSION
                       "CPU BLAS: OpenBLAS [0-9.]+ \\(scipy-openblas32\\), kernels [A-Za-z0-9]+ \\((baseline SSE|AVX|AVX2|AVX-512); this CPU")
endif()
