// The decoder weight file of a bundle: a versioned header, a tensor table, 64-byte-aligned data.
// Opened by mmap (huge pages asked for: see weights_file.cpp) and validated before any tensor is used (magic, version, file size, every entry's
// bounds, dtype and shape); problems throw FormatError naming the file and the tensor.
//
//   offset 0    FileHeader (64 B)
//   offset 64   TensorEntry[tensor_count] (128 B each)
//   data_offset tensor data; entry.offset is relative to data_offset and a multiple of 64
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <vector>

namespace qwenvl_edge {

inline constexpr char kWeightsMagic[8] = {'Q', 'V', 'L', 'E', 'D', 'G', 'E', 'W'};

enum class DType : uint32_t { kF32 = 0, kF16 = 1, kI8 = 2, kI32 = 3, kQ4Block = 4 };

struct FileHeader {
  char magic[8];
  uint32_t format_version;
  uint32_t tensor_count;
  uint64_t data_offset;
  uint64_t file_size;  // of the whole file: a truncated copy is caught before any read
  uint8_t reserved[32];
};
static_assert(sizeof(FileHeader) == 64);

struct TensorEntry {
  char name[80];  // NUL-terminated
  uint32_t dtype;  // DType
  uint32_t ndim;
  uint64_t shape[3];  // Q4Block tensors: [n/16, k/128, 1072]
  uint64_t offset;
  uint64_t nbytes;
};
static_assert(sizeof(TensorEntry) == 128);

class FormatError : public std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct TensorView {
  DType dtype;
  std::vector<int64_t> shape;
  const void* data;
};

// A read-only mapping of one weight file.
class WeightsFile {
 public:
  explicit WeightsFile(const std::string& path);
  ~WeightsFile();
  WeightsFile(const WeightsFile&) = delete;
  WeightsFile& operator=(const WeightsFile&) = delete;

  bool has(const std::string& name) const { return tensors_.count(name) != 0; }
  // The tensor, checked for dtype and shape; throws FormatError naming the tensor otherwise.
  const void* get(const std::string& name, DType dtype, const std::vector<int64_t>& shape) const;
  const std::string& path() const { return path_; }
  // Marks a tensor that is read a few rows at a time (the embedding table) for small pages: the file
  // is mapped for huge pages, which a tensor streamed whole every token wants and a sparse one does
  // not (each row touched would bring 2 MiB into RSS). Advice only: no effect where unsupported.
  void read_sparsely(const void* data, size_t bytes) const;

 private:
  std::string path_;
  void* map_ = nullptr;
  size_t size_ = 0;
  std::unordered_map<std::string, TensorView> tensors_;
};

}  // namespace qwenvl_edge
