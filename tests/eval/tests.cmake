# The Inception weight converter's reader and rules, with the test Python (numpy only, no torch).
add_test(NAME inception_converter
         COMMAND ${RAE_PYTHON_EXE} ${CMAKE_CURRENT_LIST_DIR}/convert_inception_check.py ${CMAKE_SOURCE_DIR})
set_tests_properties(inception_converter PROPERTIES TIMEOUT 60 LABELS eval)
