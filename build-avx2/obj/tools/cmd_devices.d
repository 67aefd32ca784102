build-avx2/obj/tools/cmd_devices.o: tools/cmd_devices.c tools/cli.h \
 engine/diffaug.h kernels/cuda/dcuda.h
tools/cli.h:
engine/diffaug.h:
kernels/cuda/dcuda.h:
