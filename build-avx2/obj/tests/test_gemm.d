build-avx2/obj/tests/test_gemm.o: tests/test_gemm.c kernels/cpu/gemm.h \
 kernels/cpu/kcommon.h tests/testutil.h
kernels/cpu/gemm.h:
kernels/cpu/kcommon.h:
tests/testutil.h:
