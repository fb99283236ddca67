# rae_library(NAME DIR DEPS...): one library per folder of src/. Sources are globbed so that a new
# file needs no CMake edit: DIR/*.cpp, DIR/cpu/*.cpp, and with CUDA DIR/*.cu, DIR/cuda/*.cu.
function(rae_library name dir)
  file(GLOB srcs CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/src/${dir}/*.cpp ${CMAKE_SOURCE_DIR}/src/${dir}/cpu/*.cpp)
  if(RAE_WITH_CUDA)
    file(GLOB cu CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/src/${dir}/*.cu ${CMAKE_SOURCE_DIR}/src/${dir}/cuda/*.cu
         ${CMAKE_SOURCE_DIR}/src/${dir}/cuda/*.cpp)
    list(APPEND srcs ${cu})
  endif()
  if(NOT srcs)  # a layer with no sources yet is an interface target
    add_library(${name} INTERFACE)
    target_include_directories(${name} INTERFACE ${CMAKE_SOURCE_DIR}/src)
    target_link_libraries(${name} INTERFACE ${ARGN})
    if(RAE_WITH_CUDA)
      target_compile_definitions(${name} INTERFACE RAE_WITH_CUDA=1)
    endif()
    return()
  endif()
  add_library(${name} STATIC ${srcs})
  target_include_directories(${name} PUBLIC ${CMAKE_SOURCE_DIR}/src)
  target_link_libraries(${name} PUBLIC ${ARGN})
  target_compile_options(${name} PRIVATE $<$<COMPILE_LANGUAGE:CXX>:${RAE_WARNINGS}>
                         $<$<COMPILE_LANGUAGE:CUDA>:-Xcompiler=-Wall,-Wno-unused-parameter --expt-relaxed-constexpr -Xcudafe=--diag_suppress=177>)
  if(RAE_WITH_CUDA)
    target_compile_definitions(${name} PUBLIC RAE_WITH_CUDA=1)
    set_target_properties(${name} PROPERTIES CUDA_SEPARABLE_COMPILATION OFF POSITION_INDEPENDENT_CODE ON)
  endif()
endfunction()
