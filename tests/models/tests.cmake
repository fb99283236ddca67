# test_dit_cli runs the rae executable.
add_dependencies(test_dit_cli rae)
