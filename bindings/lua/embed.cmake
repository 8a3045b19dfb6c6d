# embed.cmake - turn a Lua source file into a C header with its bytes, so that
# the module is one shared object. Usage: cmake -DIN=file.lua -DOUT=file.h -P embed.cmake
file(READ ${IN} hex HEX)
string(LENGTH "${hex}" len)
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
string(REGEX REPLACE "((0x..,){16})" "\\1\n    " bytes "${bytes}")
file(WRITE ${OUT}.tmp "/* Generated from ${IN} by embed.cmake; do not edit. */\n"
  "static const char ekl_lua_src[] = {\n    ${bytes}\n};\n")
file(RENAME ${OUT}.tmp ${OUT})
