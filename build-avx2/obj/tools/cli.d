build-avx2/obj/tools/cli.o: tools/cli.c tools/cli.h engine/diffaug.h
tools/cli.h:
engine/diffaug.h:
