#!/usr/bin/env python3
"""Turn a file into a C array: embed.py SYMBOL INPUT OUTPUT."""
import sys

sym, src, dst = sys.argv[1:4]
data = open(src, 'rb').read()
with open(dst, 'w') as f:
    f.write('/* generated from %s by embed.py */\n#include <stddef.h>\n' % src.split('/')[-1])
    f.write('const char %s[] = {\n' % sym)
    for i in range(0, len(data), 16):
        f.write('  ' + ''.join('0x%02x,' % b for b in data[i:i + 16]) + '\n')
    f.write('  0x00\n};\nconst size_t %s_len = %d;\n' % (sym, len(data)))
