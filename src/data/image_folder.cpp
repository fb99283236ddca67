#include "data/image_folder.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "core/error.h"

namespace rae::data {

namespace fs = std::filesystem;

bool has_image_extension(const std::string& name) {
  std::string ext = fs::path(name).extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(),
                 [](unsigned char c) { return std::tolower(c); });
  return ext == ".jpg" || ext == ".jpeg" || ext == ".png";
}

namespace {

std::vector<std::string> sorted_subdirs(const fs::path& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.is_directory()) out.push_back(e.path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<std::string> sorted_image_files(const fs::path& dir, bool recursive) {
  std::vector<std::string> out;
  if (recursive) {
    // torchvision walks class folders recursively (sorted(os.walk(..., followlinks=True)), then
    // sorted file names): order by (sub-folder, file name), so a folder's own files come first.
    std::vector<std::pair<std::string, std::string>> keyed;
    for (const auto& e :
         fs::recursive_directory_iterator(dir, fs::directory_options::follow_directory_symlink))
      if (e.is_regular_file() && has_image_extension(e.path().filename().string())) {
        fs::path rel = fs::relative(e.path(), dir);
        keyed.emplace_back(rel.parent_path().string(), rel.filename().string());
      }
    std::sort(keyed.begin(), keyed.end());
    for (const auto& [parent, name] : keyed)
      out.push_back(parent.empty() ? name : parent + "/" + name);
    return out;
  } else {
    for (const auto& e : fs::directory_iterator(dir))
      if (e.is_regular_file() && has_image_extension(e.path().filename().string()))
        out.push_back(e.path().filename().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace

ImageFolderList list_image_folder(const std::string& root, const std::string& split,
                                  const std::string& label_file) {
  fs::path dir = fs::path(root) / split;
  RAE_CHECK(fs::is_directory(dir), "image folder: no directory ", dir.string());
  ImageFolderList list;
  list.root = dir.string();
  std::vector<std::string> subdirs = sorted_subdirs(dir);
  if (!subdirs.empty() && label_file.empty()) {
    // Class folders. A validation split uses the training split's class list when present, so
    // labels agree across splits even when a class has no validation images.
    fs::path train = fs::path(root) / "train";
    list.classes = (split != "train" && fs::is_directory(train)) ? sorted_subdirs(train) : subdirs;
    std::map<std::string, int32_t> index;
    for (size_t i = 0; i < list.classes.size(); ++i)
      index[list.classes[i]] = static_cast<int32_t>(i);
    for (const auto& cls : subdirs) {
      auto it = index.find(cls);
      RAE_CHECK(it != index.end(), "image folder: class folder ", (dir / cls).string(),
                " is not a class of ", train.string());
      for (const auto& f : sorted_image_files(dir / cls, true))
        list.entries.push_back({(dir / cls / f).string(), cls + "/" + f, it->second});
    }
    return list;
  }
  // Flat split with a label file.
  RAE_CHECK(!label_file.empty(), "image folder: ", dir.string(),
            " has no class folders; pass a label file (lines '<file> <class>')");
  fs::path train = fs::path(root) / "train";
  if (fs::is_directory(train)) list.classes = sorted_subdirs(train);
  std::map<std::string, int32_t> index;
  for (size_t i = 0; i < list.classes.size(); ++i) index[list.classes[i]] = static_cast<int32_t>(i);
  std::ifstream in(label_file);
  RAE_CHECK(in.good(), "image folder: cannot open label file ", label_file);
  std::map<std::string, std::string> label_of;
  std::string line;
  int lineno = 0;
  while (std::getline(in, line)) {
    ++lineno;
    std::replace(line.begin(), line.end(), ',', ' ');
    std::istringstream ls(line);
    std::string file, cls;
    if (!(ls >> file)) continue;
    RAE_CHECK(static_cast<bool>(ls >> cls), "label file ", label_file, ":", lineno,
              ": expected '<file> <class>'");
    label_of[file] = cls;
  }
  if (list.classes.empty()) {  // classes from the label file itself
    std::vector<std::string> names;
    for (const auto& [f, c] : label_of) names.push_back(c);
    std::sort(names.begin(), names.end());
    names.erase(std::unique(names.begin(), names.end()), names.end());
    list.classes = names;
    for (size_t i = 0; i < names.size(); ++i) index[names[i]] = static_cast<int32_t>(i);
  }
  for (const auto& f : sorted_image_files(dir, false)) {
    std::string stem = fs::path(f).stem().string();
    auto it = label_of.find(f);
    if (it == label_of.end()) it = label_of.find(stem);
    RAE_CHECK(it != label_of.end(), "label file ", label_file, " has no label for ",
              (dir / f).string());
    int32_t label;
    auto ci = index.find(it->second);
    if (ci != index.end()) {
      label = ci->second;
    } else {
      char* end = nullptr;
      long v = std::strtol(it->second.c_str(), &end, 10);
      RAE_CHECK(end && *end == 0 && v >= 0 && v < static_cast<long>(list.classes.size()),
                "label file ", label_file, ": unknown class '", it->second, "' for ", f);
      label = static_cast<int32_t>(v);
    }
    list.entries.push_back({(dir / f).string(), f, label});
  }
  return list;
}

}  // namespace rae::data
