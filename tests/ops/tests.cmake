# The op harness (case table + machinery) is shared by the op test executables.
foreach(t test_ops_fd test_ops_backends test_ops_reference)
  if(TARGET ${t})
    target_sources(${t} PRIVATE ${CMAKE_CURRENT_LIST_DIR}/op_harness.cpp
                   ${CMAKE_CURRENT_LIST_DIR}/op_cases.cpp ${CMAKE_CURRENT_LIST_DIR}/op_references.cpp
                   ${CMAKE_CURRENT_LIST_DIR}/op_cases_vision.cpp
                   ${CMAKE_CURRENT_LIST_DIR}/op_references_vision.cpp)
  endif()
endforeach()
