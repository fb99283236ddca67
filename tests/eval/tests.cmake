# Evaluation tests (label eval). GoogleTest executables are named *_test.cpp here (not test_*.cpp,
# which tests/CMakeLists.txt discovers without labels) so that their tests carry the label.
foreach(name metrics_test job_test)
  add_executable(eval_${name} ${CMAKE_CURRENT_LIST_DIR}/${name}.cpp)
  target_link_libraries(eval_${name} PRIVATE rae_test_support GTest::gtest_main)
  target_compile_options(eval_${name} PRIVATE ${RAE_WARNINGS})
  gtest_discover_tests(eval_${name} DISCOVERY_TIMEOUT 60 PROPERTIES TIMEOUT 120 LABELS eval)
endforeach()

# `rae eval` end to end under mpirun (oversubscribed), on precomputed features.
set(RAE_EVAL_TEST_ENV
    OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_btl=self,vader
    OMPI_MCA_rmaps_base_oversubscribe=1 OMPI_MCA_btl_vader_single_copy_mechanism=none)
foreach(mode metrics errors network)
  add_test(NAME eval_cli_${mode}
           COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/eval_cli.sh $<TARGET_FILE:rae> ${RAE_PYTHON_EXE}
                   ${CMAKE_BINARY_DIR}/test-tmp/eval_cli_${mode} ${mode}
                   -- ${MPIEXEC_EXECUTABLE} --oversubscribe --bind-to none)
  set_tests_properties(eval_cli_${mode} PROPERTIES ENVIRONMENT "${RAE_EVAL_TEST_ENV}" TIMEOUT 300
                       PROCESSORS 2 SKIP_RETURN_CODE 77 LABELS "eval;mpi")
endforeach()
