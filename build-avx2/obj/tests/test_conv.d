build-avx2/obj/tests/test_conv.o: tests/test_conv.c kernels/cpu/conv.h \
 kernels/cpu/gemm.h kernels/cpu/kcommon.h tests/testutil.h
kernels/cpu/conv.h:
kernels/cpu/gemm.h:
kernels/cpu/kcommon.h:
tests/testutil.h:
