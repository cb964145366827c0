#include "model/loader_mmap.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/error.h"

namespace tessera {

MappedFile map_file(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    throw Error(errno == ENOENT ? ErrorKind::kNotFound : ErrorKind::kInvalidArgument,
                path + ": cannot open: " + std::strerror(errno));
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    throw Error(ErrorKind::kInvalidArgument, path + ": not a regular file");
  }
  MappedFile out;
  const size_t size = static_cast<size_t>(st.st_size);
  if (size == 0) {
    ::close(fd);
    return out;
  }
  void* addr = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
  const int err = errno;
  ::close(fd);  // the mapping stays valid without the descriptor
  if (addr == MAP_FAILED) {
    throw Error(ErrorKind::kInternal, path + ": mmap failed: " + std::strerror(err));
  }
  out.mapping = std::shared_ptr<void>(addr, [size](void* p) { ::munmap(p, size); });
  out.bytes = std::span<const uint8_t>(static_cast<const uint8_t*>(addr), size);
  return out;
}

}  // namespace tessera
