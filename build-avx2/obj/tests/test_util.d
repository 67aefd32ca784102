build-avx2/obj/tests/test_util.o: tests/test_util.c tests/testutil.h \
 engine/util.h engine/diffaug.h
tests/testutil.h:
engine/util.h:
engine/diffaug.h:
