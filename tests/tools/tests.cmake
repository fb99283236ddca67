# tools/convert_rae_checkpoint.py refuses to guess the head depth (no torch needed).
add_test(NAME tools_convert_depths
         COMMAND ${RAE_PYTHON_EXE} ${CMAKE_CURRENT_LIST_DIR}/test_convert_rae_checkpoint.py)
set_tests_properties(tools_convert_depths PROPERTIES TIMEOUT 60 LABELS tools)
