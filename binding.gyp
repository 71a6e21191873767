{
  "targets": [
    {
      "target_name": "trellis_native",
      "sources": ["native/trellis_native.c"],
      "cflags": ["-Wall", "-Wextra", "-O2"]
    }
  ]
}
