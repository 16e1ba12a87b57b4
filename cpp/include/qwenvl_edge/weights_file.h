// The decoder weight file of a bundle (docs/bundle.md 4): a versioned header, the config it was written
// for, a tensor table, 64-byte-aligned data. Opened by mmap (huge pages asked for: see weights_file.cpp)
// and validated before any tensor is used (magic, version, file size, every entry's bounds, dtype and
// shape); problems throw FormatError naming the file and the tensor.
//
//   offset 0    FileHeader (64 B)
//   offset 64   ConfigEntry[config_count] (64 B each)
//   then        TensorEntry[tensor_count] (128 B each)
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
  uint32_t config_count;
  uint8_t reserved[28];
};
static_assert(sizeof(FileHeader) == 64);

// One key of the decoder config the file was written for (decoder.h: decoder_config_keys() says which
// keys and how each value is read: int64, float64, or a bool as int64 0/1).
struct ConfigEntry {
  char key[56];  // NUL-terminated
  uint64_t value;  // the 8 bytes of the value
};
static_assert(sizeof(ConfigEntry) == 64);

struct TensorEntry {
  char name[80];  // NUL-terminated
  uint32_t dtype;  // DType
  uint32_t ndim;
  uint64_t shape[3];  // Q4Block tensors: [n/16, k/128, 1072]
  uint64_t offset;
  uint64_t nbytes;
};
static_assert(sizeof(TensorEntry) == 128);

// A file that is not what it should be. The Python module raises qwenvl_edge.errors.FormatError for it.
class FormatError : public std::runtime_error {
  using std::runtime_error::runtime_error;
};

const char* dtype_name(DType d);  // "f32", "f16", "i8", "i32", "q4block"

struct TensorView {
  DType dtype;
  std::vector<int64_t> shape;
  const void* data;
};

// A read-only mapping of one weight file.
class WeightsFile {
 public:
  // std::invalid_argument for a path with a NUL byte; FormatError for anything but a valid regular file.
  explicit WeightsFile(const std::string& path);
  ~WeightsFile();
  WeightsFile(const WeightsFile&) = delete;
  WeightsFile& operator=(const WeightsFile&) = delete;

  bool has(const std::string& name) const { return tensors_.count(name) != 0; }
  // The tensor, checked for dtype and shape; throws FormatError naming the tensor otherwise.
  const void* get(const std::string& name, DType dtype, const std::vector<int64_t>& shape) const;
  const std::string& path() const { return path_; }
  const std::unordered_map<std::string, TensorView>& tensors() const { return tensors_; }
  // The recorded config: key -> the 8 bytes of its value (check_file_config reads them).
  const std::unordered_map<std::string, uint64_t>& config() const { return config_; }
  // Marks a tensor that is read a few rows at a time (the embedding table) for small pages: the file
  // is mapped for huge pages, which a tensor streamed whole every token wants and a sparse one does
  // not (each row touched would bring 2 MiB into RSS). Advice only: no effect where unsupported.
  void read_sparsely(const void* data, size_t bytes) const;

 private:
  std::string path_;
  void* map_ = nullptr;
  size_t size_ = 0;
  std::unordered_map<std::string, TensorView> tensors_;
  std::unordered_map<std::string, uint64_t> config_;
};

}  // namespace qwenvl_edge
