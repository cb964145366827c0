# Sourced by the GPU scripts on the device image: model/ needs PCRE2 and nlohmann-json, which
# the image lacks (carried as Debian .debs in $DEBS, default .gpudebs), and NCCL comes from
# the image's nvidia-nccl Python wheel.
DEBS=${DEBS:-.gpudebs}
if ls "$DEBS"/*.deb >/dev/null 2>&1; then
  root=/var/tmp/deproot
  mkdir -p $root && for d in "$DEBS"/*.deb; do dpkg -x "$d" $root; done
  for pc in $root/usr/lib/x86_64-linux-gnu/pkgconfig/*.pc; do
    sed -i "s|^prefix=.*|prefix=$root/usr|" "$pc"
  done
  export PKG_CONFIG_PATH=$root/usr/lib/x86_64-linux-gnu/pkgconfig
  export CMAKE_PREFIX_PATH=$root/usr
  export LD_LIBRARY_PATH=$root/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
fi
if [ -z "${NCCL_HOME:-}" ]; then
  NCCL_HOME=$(python3 -c 'import nvidia.nccl as m; print(list(m.__path__)[0])' 2>/dev/null)
  export NCCL_HOME
fi
[ -n "$NCCL_HOME" ] && export LD_LIBRARY_PATH=$NCCL_HOME/lib:${LD_LIBRARY_PATH:-}
[ -n "$NCCL_HOME" ] && [ ! -e "$NCCL_HOME/lib/libnccl.so" ] && ln -sf libnccl.so.2 "$NCCL_HOME/lib/libnccl.so"
export NCCL_NVLS_ENABLE=0
