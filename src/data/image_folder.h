// ImageFolder listing (torchvision semantics): <root>/<split>/<class>/<file>, classes are the
// sorted sub-folder names of the training split, labels their index, files sorted by name inside
// each class; the global index is (class, file) order. A validation split may also be flat
// (<root>/val/<file>) with a label file of "<file> <class name or index>" lines.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace rae::data {

struct ImageEntry {
  std::string path;     // absolute or root-relative path, as found
  std::string relpath;  // path relative to the split folder ("n01440764/x.JPEG")
  int32_t label = -1;
};

struct ImageFolderList {
  std::string root;                  // the split folder
  std::vector<std::string> classes;  // sorted class names; label = index
  std::vector<ImageEntry> entries;   // deterministic global order
};

bool has_image_extension(
    const std::string& name);  // .jpg .jpeg .png (any case), as torchvision's subset

// Lists `root/split`. For a flat split (no class folders) `label_file` is required and the
// classes come from `root/train` (or from the label file's class names when there is no train).
ImageFolderList list_image_folder(const std::string& root, const std::string& split = "train",
                                  const std::string& label_file = "");

}  // namespace rae::data
