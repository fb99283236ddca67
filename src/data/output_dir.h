// Output directories of the writers (`rae synth-cache`, `rae cache`): a writer never mixes its
// files with what a directory already holds, and never deletes what it did not write.
#pragma once
#include <string>
#include <vector>

namespace rae::data {

// The entries of `dir` (names, sorted); empty when `dir` does not exist. Throws when `dir`
// exists but is not a directory, or cannot be listed.
std::vector<std::string> dir_entries(const std::string& dir);

// Whether `name` is a file a latent-cache writer makes: manifest.json, stats.safetensors,
// cache_job.json, *.h5, and the .tmp files of their atomic writes.
bool is_cache_file(const std::string& name);

// Called before a cache writer fills `dir`. Absent or empty: created. Otherwise, without
// `overwrite`: an error naming `dir`, a few of its entries and `--overwrite`. With `overwrite`:
// the cache files in it (is_cache_file) are removed and listed in the log; other entries stay.
// `command` prefixes the messages ("synth-cache").
void prepare_cache_dir(const std::string& dir, bool overwrite, const std::string& command);

// "a, b, c and 4 more" (for messages).
std::string name_sample(const std::vector<std::string>& names, size_t shown = 3);

}  // namespace rae::data
