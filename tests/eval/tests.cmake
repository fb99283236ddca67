# Evaluation tests (label eval). The GoogleTest sources are named *_test.cpp here (not test_*.cpp,
# which tests/CMakeLists.txt registers itself) so that their tests carry the label; the
# executables are still named test_eval_* so that tests/device/prepare.sh bundles them (their
# CUDA tests run in the device check).
foreach(name metrics job agreement)
  add_executable(test_eval_${name} ${CMAKE_CURRENT_LIST_DIR}/${name}_test.cpp)
  target_link_libraries(test_eval_${name} PRIVATE rae_test_support GTest::gtest_main)
  target_compile_options(test_eval_${name} PRIVATE ${RAE_WARNINGS})
  gtest_discover_tests(test_eval_${name} DISCOVERY_TIMEOUT 60 PROPERTIES TIMEOUT 120 LABELS eval)
endforeach()

# `rae eval` end to end under mpirun (oversubscribed): metrics and errors on precomputed features,
# and the network path (skipped, exit 77, in a build without InceptionV3).
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

# The Inception weight converter's reader and rules, with the test Python (numpy only, no torch).
add_test(NAME inception_converter
         COMMAND ${RAE_PYTHON_EXE} ${CMAKE_CURRENT_LIST_DIR}/convert_inception_check.py ${CMAKE_SOURCE_DIR})
set_tests_properties(inception_converter PROPERTIES TIMEOUT 60 LABELS eval)
add_dependencies(test_eval_agreement rae)  # ClassAgreementCli runs the executable
