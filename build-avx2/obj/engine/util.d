build-avx2/obj/engine/util.o: engine/util.c engine/util.h \
 engine/diffaug.h
engine/util.h:
engine/diffaug.h:
