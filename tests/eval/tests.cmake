# Evaluation tests (label eval). GoogleTest executables are named *_test.cpp here (not test_*.cpp,
# which tests/CMakeLists.txt discovers without labels) so that their tests carry the label.
foreach(name metrics_test)
  add_executable(eval_${name} ${CMAKE_CURRENT_LIST_DIR}/${name}.cpp)
  target_link_libraries(eval_${name} PRIVATE rae_test_support GTest::gtest_main)
  target_compile_options(eval_${name} PRIVATE ${RAE_WARNINGS})
  gtest_discover_tests(eval_${name} DISCOVERY_TIMEOUT 60 PROPERTIES TIMEOUT 120 LABELS eval)
endforeach()
