# CLI smoke tests for `rae synth-cache` (the library paths are covered by tests/data/test_cache_*.cpp).
add_test(NAME cli.synth_cache.writes
         COMMAND rae synth-cache --out ${CMAKE_BINARY_DIR}/test-tmp/cli-synth-cache --overwrite --samples 100
                 --grid 2x3 --channels 4 --classes 3 --shard-size 40 --dtype f16 --flip)
set_tests_properties(cli.synth_cache.writes PROPERTIES TIMEOUT 60
                     PASS_REGULAR_EXPRESSION "100 samples, 3 shards, grid 2x3, 4 channels, f16")
add_test(NAME cli.synth_cache.unknown_option
         COMMAND rae synth-cache --out ${CMAKE_BINARY_DIR}/test-tmp/cli-synth-bad --samples 10
                 --channels 4 --chanels 4)
set_tests_properties(cli.synth_cache.unknown_option PROPERTIES TIMEOUT 60
                     PASS_REGULAR_EXPRESSION "unrecognised option '--chanels'")
add_test(NAME cli.synth_cache.bad_dtype
         COMMAND rae synth-cache --out ${CMAKE_BINARY_DIR}/test-tmp/cli-synth-bad --samples 10
                 --channels 4 --dtype int8)
set_tests_properties(cli.synth_cache.bad_dtype PROPERTIES TIMEOUT 60
                     PASS_REGULAR_EXPRESSION "unknown cache dtype 'int8'")
