build-avx2/obj/kernels/cpu/gemm.o: kernels/cpu/gemm.c kernels/cpu/gemm.h \
 kernels/cpu/kcommon.h
kernels/cpu/gemm.h:
kernels/cpu/kcommon.h:
