build-avx2/obj/kernels/cpu/conv.o: kernels/cpu/conv.c kernels/cpu/conv.h \
 kernels/cpu/gemm.h kernels/cpu/kcommon.h
kernels/cpu/conv.h:
kernels/cpu/gemm.h:
kernels/cpu/kcommon.h:
