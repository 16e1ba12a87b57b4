// Opening and validating a decoder weight file (weights_file.h).
#include "qwenvl_edge/weights_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

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

std::string shape_str(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

}  // namespace

WeightsFile::WeightsFile(const std::string& path) : path_(path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw FormatError(path + ": cannot open (" + std::strerror(errno) + ")");
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    ::close(fd);
    throw FormatError(path + ": cannot stat");
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
    const uint64_t table_end = sizeof(FileHeader) + uint64_t(h.tensor_count) * sizeof(TensorEntry);
    if (h.tensor_count > 100000 || table_end > size_ || h.data_offset < table_end || h.data_offset > size_ ||
        h.data_offset % 64)
      throw FormatError(path + ": corrupt header (tensor table or data offset out of bounds)");
    for (uint32_t i = 0; i < h.tensor_count; ++i) {
      TensorEntry e;
      std::memcpy(&e, base + sizeof(FileHeader) + uint64_t(i) * sizeof(TensorEntry), sizeof e);
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
        count *= e.shape[d];
        shape.push_back(static_cast<int64_t>(e.shape[d]));
      }
      const DType dt = static_cast<DType>(e.dtype);
      if (e.nbytes != count * dtype_size(dt) || e.offset % 64 || e.offset > size_ - h.data_offset ||
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
