build-avx2/obj/tools/diffaug.o: tools/diffaug.c tools/cli.h \
 engine/diffaug.h
tools/cli.h:
engine/diffaug.h:
