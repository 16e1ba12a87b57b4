// Opening and validating a decoder weight file (weights_file.h).
#include "qwenvl_edge/weights_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

#include "qwenvl_edge/core.h"
#include "qwenvl_edge/q4_block.h"

namespace qwenvl_edge {
namespace {

size_t dtype_size(DType d) {
  switch (d) {
    case DType::kF32:
    case DType::kI32:
      return 4;
    case DType::kF16:
      return 2;
    case DType::kI8:
    case DType::kQ4Block:
      return 1;
  }
  return 0;
}

}  // namespace

const char* dtype_name(DType d) {
  switch (d) {
    case DType::kF32:
      return "f32";
    case DType::kF16:
      return "f16";
    case DType::kI8:
      return "i8";
    case DType::kI32:
      return "i32";
    case DType::kQ4Block:
      return "q4block";
  }
  return "?";
}

namespace {

std::string shape_str(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

}  // namespace

WeightsFile::WeightsFile(const std::string& path) : path_(path) {
  if (path.find('\0') != std::string::npos)  // open() would stop at it and read another file
    throw std::invalid_argument("decoder file path contains a NUL byte");
  // O_NONBLOCK: a FIFO is refused below instead of blocking the open until a writer comes.
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) throw FormatError(path + ": cannot open (" + std::strerror(errno) + ")");
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    throw FormatError(path + ": not a regular file");
  }
  size_ = static_cast<size_t>(st.st_size);
  if (size_ < sizeof(FileHeader)) {
    ::close(fd);
    throw FormatError(path + ": " + std::to_string(size_) + " bytes, too small for a weight file");
  }
  map_ = ::mmap(nullptr, size_, PROT_READ, MAP_SHARED, fd, 0);
  ::close(fd);  // the mapping keeps the file
  if (map_ == MAP_FAILED) {
    map_ = nullptr;
    throw FormatError(path + ": mmap failed (" + std::strerror(errno) + ")");
  }
#ifdef MADV_HUGEPAGE
  // Decode reads ~4 GB of weights per token. Mapped in 4 KiB pages that is a TLB miss every page
  // and page-cache folios of whatever size the reads that filled it chose; with this advice the
  // kernel fills the cache with 2 MiB folios on our faults and maps them whole (ext4, XFS, tmpfs).
  // Measured: 305 -> 207 ms per decode step on a file cached in small folios (NOTES.md).
  ::madvise(map_, size_, MADV_HUGEPAGE);
#endif
  try {
    const auto* base = static_cast<const uint8_t*>(map_);
    FileHeader h;
    std::memcpy(&h, base, sizeof h);
    if (std::memcmp(h.magic, kWeightsMagic, sizeof h.magic) != 0)
      throw FormatError(path + ": not a qwenvl-edge decoder weight file (bad magic)");
    if (h.format_version != static_cast<uint32_t>(kFormatVersion))
      throw FormatError(path + ": format version " + std::to_string(h.format_version) + ", this runtime reads " +
                        std::to_string(kFormatVersion) + "; re-export the bundle");
    if (h.file_size != size_)
      throw FormatError(path + ": " + std::to_string(size_) + " bytes but the header says " +
                        std::to_string(h.file_size) + " (truncated or padded copy)");
    // Both counts are bounded first, so these sums cannot wrap.
    const uint64_t config_at = sizeof(FileHeader);
    const uint64_t table_at = config_at + uint64_t(h.config_count) * sizeof(ConfigEntry);
    const uint64_t table_end = table_at + uint64_t(h.tensor_count) * sizeof(TensorEntry);
    if (h.tensor_count > 100000 || h.config_count > 1000 || table_end > size_ || h.data_offset < table_end ||
        h.data_offset > size_ || h.data_offset % 64)
      throw FormatError(path + ": corrupt header (config or tensor table or data offset out of bounds)");
    for (uint32_t i = 0; i < h.config_count; ++i) {
      ConfigEntry c;
      std::memcpy(&c, base + config_at + uint64_t(i) * sizeof(ConfigEntry), sizeof c);
      if (std::memchr(c.key, 0, sizeof c.key) == nullptr)
        throw FormatError(path + ": config entry " + std::to_string(i) + " has an unterminated key");
      if (!config_.emplace(std::string(c.key), c.value).second)
        throw FormatError(path + ": config key '" + std::string(c.key) + "' appears twice");
    }
    for (uint32_t i = 0; i < h.tensor_count; ++i) {
      TensorEntry e;
      std::memcpy(&e, base + table_at + uint64_t(i) * sizeof(TensorEntry), sizeof e);
      if (std::memchr(e.name, 0, sizeof e.name) == nullptr)
        throw FormatError(path + ": tensor " + std::to_string(i) + " has an unterminated name");
      const std::string name(e.name);
      if (e.dtype > static_cast<uint32_t>(DType::kQ4Block) || e.ndim == 0 || e.ndim > 3)
        throw FormatError(path + ": tensor '" + name + "' has a bad dtype or rank");
      uint64_t count = 1;
      std::vector<int64_t> shape;
      for (uint32_t d = 0; d < e.ndim; ++d) {
        if (e.shape[d] == 0 || e.shape[d] > (uint64_t(1) << 40))
          throw FormatError(path + ": tensor '" + name + "' has a bad shape");
        if (__builtin_mul_overflow(count, e.shape[d], &count))
          throw FormatError(path + ": tensor '" + name + "' has a bad shape (its size overflows)");
        shape.push_back(static_cast<int64_t>(e.shape[d]));
      }
      const DType dt = static_cast<DType>(e.dtype);
      uint64_t nbytes = 0;
      if (__builtin_mul_overflow(count, dtype_size(dt), &nbytes) || e.nbytes != nbytes || e.offset % 64 || e.offset > size_ - h.data_offset ||
          e.nbytes > size_ - h.data_offset - e.offset)
        throw FormatError(path + ": tensor '" + name + "' lies outside the file or has a wrong byte size");
      if (!tensors_.emplace(name, TensorView{dt, shape, base + h.data_offset + e.offset}).second)
        throw FormatError(path + ": tensor '" + name + "' appears twice");
    }
  } catch (...) {
    ::munmap(map_, size_);
    map_ = nullptr;
    throw;
  }
}

WeightsFile::~WeightsFile() {
  if (map_) ::munmap(map_, size_);
}

const void* WeightsFile::get(const std::string& name, DType dtype, const std::vector<int64_t>& shape) const {
  const auto it = tensors_.find(name);
  if (it == tensors_.end()) throw FormatError(path_ + ": tensor '" + name + "' is missing");
  const TensorView& t = it->second;
  if (t.dtype != dtype || t.shape != shape)
    throw FormatError(path_ + ": tensor '" + name + "' is " + dtype_name(t.dtype) + " " + shape_str(t.shape) +
                      ", expected " + dtype_name(dtype) + " " + shape_str(shape));
  return t.data;
}

void WeightsFile::read_sparsely(const void* data, size_t bytes) const {
#ifdef MADV_NOHUGEPAGE
  const uintptr_t page = static_cast<uintptr_t>(::sysconf(_SC_PAGESIZE));
  const uintptr_t begin = reinterpret_cast<uintptr_t>(data) / page * page;
  const uintptr_t end = (reinterpret_cast<uintptr_t>(data) + bytes + page - 1) / page * page;
  ::madvise(reinterpret_cast<void*>(begin), end - begin, MADV_NOHUGEPAGE);
#else
  (void)data;
  (void)bytes;
#endif
}

}  // namespace qwenvl_edge
