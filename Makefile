# SPDX-License-Identifier: Apache-2.0
# zmesh build. One non-recursive Makefile; everything generated lands in build/.
# Quiet unless V=1. `make CC=clang` must build clean as well as gcc.

.DELETE_ON_ERROR:
.SECONDARY:
.SUFFIXES:

V ?= 0
ifeq ($(V),1)
Q :=
msg = @true
else
Q := @
msg = @printf '  %-8s %s\n' "$(1)" "$(2)";
endif

CC      ?= cc
ifeq ($(origin CC),default)
CC := cc
endif
CLANG   ?= clang
BPFTOOL ?= bpftool
ARCH    := $(shell uname -m | sed -e 's/x86_64/x86/' -e 's/aarch64/arm64/')

B       := build
LLHTTP  := /usr/share/llhttp

WARN    := -Wall -Wextra -Werror -Wno-unused-parameter -Wshadow -Wformat=2 -Wvla
CPPFLAGS := -D_GNU_SOURCE -Iinclude -I$(B) -I/usr/share/include/llhttp -MMD -MP
CFLAGS  ?= -O2 -g
CFLAGS  += -std=c11 $(WARN) -fno-strict-aliasing -fstack-protector-strong
LDLIBS  := -lbpf -lelf -lz -luring -lmnl -lyaml -lnghttp2 -ljansson -lpcre2-8 -lssl -lcrypto -lpthread -lm
SAN     := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined

BPF_CFLAGS := -g -O2 -target bpf -D__TARGET_ARCH_$(ARCH) -Wall -Werror \
	-Ivmlinux -Iinclude -Ibpf

# ---- sources ---------------------------------------------------------------
BPF_SRCS  := $(wildcard bpf/*.bpf.c)
BPF_OBJS  := $(patsubst bpf/%.bpf.c,$(B)/bpf/%.bpf.o,$(BPF_SRCS))
BPF_SKELS := $(patsubst bpf/%.bpf.c,$(B)/bpf/%.skel.h,$(BPF_SRCS))

LIB_SRCS  := $(wildcard userspace/lib/*.c)
LIB_OBJS  := $(patsubst %.c,$(B)/obj/%.o,$(LIB_SRCS))
LIB_SOBJS := $(patsubst %.c,$(B)/san/%.o,$(LIB_SRCS))
LLHTTP_OBJS  := $(patsubst $(LLHTTP)/%.c,$(B)/obj/llhttp/%.o,$(wildcard $(LLHTTP)/*.c))
LLHTTP_SOBJS := $(patsubst $(LLHTTP)/%.c,$(B)/san/llhttp/%.o,$(wildcard $(LLHTTP)/*.c))

# Every directory under userspace/ except lib/ with .c files is one binary;
# userspace/tools/<name>/ is one binary per subdirectory.
BIN_DIRS  := $(foreach d,ztunnel waypoint zmeshd zmeshctl,$(if $(wildcard userspace/$(d)/*.c),$(d)))
TOOL_DIRS := $(notdir $(patsubst %/,%,$(dir $(wildcard userspace/tools/*/*.c))))
TOOL_DIRS := $(sort $(TOOL_DIRS))
BINS      := $(addprefix $(B)/,$(BIN_DIRS) $(TOOL_DIRS))

TEST_UNIT := $(patsubst tests/unit/%.c,$(B)/tests/unit/%,$(wildcard tests/unit/*.c))
TEST_BPF  := $(patsubst tests/bpf/%.c,$(B)/tests/bpf/%,$(wildcard tests/bpf/*.c))
TEST_INT  := $(patsubst tests/integration/%.c,$(B)/tests/integration/%,$(wildcard tests/integration/*.c))
TESTS     := $(TEST_UNIT) $(TEST_BPF) $(TEST_INT)
HARNESS_SOBJ := $(B)/san/tests/harness/harness.o

.PHONY: all deps test test-build demo bench vmlinux clean fuzz check-clang tsan-ztunnel

all: $(BPF_OBJS) $(BPF_SKELS) $(BINS)

# ---- BPF -------------------------------------------------------------------
$(B)/bpf/%.tmp.o: bpf/%.bpf.c $(wildcard bpf/lib/*.h) $(wildcard include/zmesh/*.h) vmlinux/vmlinux.h
	$(call msg,BPF,$@)
	@mkdir -p $(@D)
	$(Q)$(CLANG) $(BPF_CFLAGS) -c $< -o $@

$(B)/bpf/%.bpf.o: $(B)/bpf/%.tmp.o
	$(call msg,GEN-OBJ,$@)
	$(Q)$(BPFTOOL) gen object $@ $<

$(B)/bpf/%.skel.h: $(B)/bpf/%.bpf.o
	$(call msg,GEN-SKEL,$@)
	$(Q)$(BPFTOOL) gen skeleton $< name $(subst -,_,$*) > $@

# ---- userspace ---------------------------------------------------------------
# Userspace objects may include skeletons: make them wait for all of them.
$(B)/obj/%.o: %.c | $(BPF_SKELS)
	$(call msg,CC,$@)
	@mkdir -p $(@D)
	$(Q)$(CC) $(CPPFLAGS) $(CFLAGS) -c $< -o $@

$(B)/san/%.o: %.c | $(BPF_SKELS)
	$(call msg,CC-SAN,$@)
	@mkdir -p $(@D)
	$(Q)$(CC) $(CPPFLAGS) $(CFLAGS) $(SAN) -c $< -o $@

# llhttp is Debian's generated C; it is not ours to warn about.
$(B)/obj/llhttp/%.o: $(LLHTTP)/%.c
	$(call msg,CC,$@)
	@mkdir -p $(@D)
	$(Q)$(CC) -I/usr/share/include/llhttp -O2 -g -fPIC -w -c $< -o $@
$(B)/san/llhttp/%.o: $(LLHTTP)/%.c
	$(call msg,CC-SAN,$@)
	@mkdir -p $(@D)
	$(Q)$(CC) -I/usr/share/include/llhttp -O2 -g -w $(SAN) -c $< -o $@

$(B)/libzmesh.a: $(LIB_OBJS) $(LLHTTP_OBJS)
	$(call msg,AR,$@)
	$(Q)rm -f $@ && ar rcs $@ $^
$(B)/libzmesh-san.a: $(LIB_SOBJS) $(LLHTTP_SOBJS)
	$(call msg,AR,$@)
	$(Q)rm -f $@ && ar rcs $@ $^

define bin_rule
$(B)/$(1): $(patsubst %.c,$(B)/obj/%.o,$(wildcard $(2)/*.c)) $(B)/libzmesh.a
	$$(call msg,LD,$$@)
	$$(Q)$$(CC) $$(CFLAGS) -o $$@ $$^ $$(LDLIBS)
endef
$(foreach d,$(BIN_DIRS),$(eval $(call bin_rule,$(d),userspace/$(d))))
$(foreach d,$(TOOL_DIRS),$(eval $(call bin_rule,$(d),userspace/tools/$(d))))

# ---- tests -------------------------------------------------------------------
# Every test binary links the sanitized library and the harness.
$(B)/tests/%: $(B)/san/tests/%.o $(HARNESS_SOBJ) $(B)/libzmesh-san.a
	$(call msg,LD-TEST,$@)
	@mkdir -p $(@D)
	$(Q)$(CC) $(CFLAGS) $(SAN) -o $@ $^ $(LDLIBS)

# Corpus tests of fuzz targets over waypoint code, which is not in the
# library: they link it (before the library, which has the llhttp it needs).
# waypoint_conn takes the whole waypoint but main.c (the target stands in).
WP_SOBJS := $(patsubst %.c,$(B)/san/%.o,$(filter-out userspace/waypoint/main.c,$(wildcard userspace/waypoint/*.c)))
$(B)/tests/unit/http1_fuzz_corpus: $(B)/san/userspace/waypoint/http1.o
$(B)/tests/unit/waypoint_conn_fuzz_corpus: $(WP_SOBJS)
$(B)/tests/unit/http1_fuzz_corpus $(B)/tests/unit/waypoint_conn_fuzz_corpus: $(B)/tests/unit/%: \
		$(B)/san/tests/unit/%.o $(HARNESS_SOBJ) $(B)/libzmesh-san.a
	$(call msg,LD-TEST,$@)
	@mkdir -p $(@D)
	$(Q)$(CC) $(CFLAGS) $(SAN) -o $@ $(filter %.o,$^) $(B)/libzmesh-san.a $(LDLIBS)

test-build: all $(TESTS)

deps:
	$(Q)scripts/deps.sh

test: deps
	$(Q)$(MAKE) --no-print-directory test-build
	$(Q)tests/run.sh $(TESTS)

demo: deps
	$(Q)$(MAKE) --no-print-directory all
	$(Q)scripts/demo.sh

bench: deps
	$(Q)$(MAKE) --no-print-directory all
	$(Q)scripts/bench.sh

fuzz: deps
	$(Q)scripts/fuzz.sh

check-clang:
	$(Q)$(MAKE) --no-print-directory B=build/clang CC=clang test-build

# ztunnel under ThreadSanitizer (clang), for its worker threads; scripts/tsan-ztunnel.sh
# runs lab tests with it (docs/ztunnel.md).
$(B)/tsan/ztunnel: $(wildcard userspace/ztunnel/*.c) $(LIB_SRCS) $(wildcard $(LLHTTP)/*.c) | $(BPF_SKELS)
	$(call msg,TSAN,$@)
	$(Q)mkdir -p $(@D)
	$(Q)$(CLANG) -D_GNU_SOURCE -Iinclude -I$(B) -I/usr/share/include/llhttp -std=c11 -O1 -g \
		-fsanitize=thread -fno-strict-aliasing -o $@ $^ $(LDLIBS)

tsan-ztunnel: $(B)/tsan/ztunnel

vmlinux:
	$(call msg,GEN,vmlinux/vmlinux.h)
	$(Q)$(BPFTOOL) btf dump file /sys/kernel/btf/vmlinux format c > vmlinux/vmlinux.h.tmp
	$(Q)mv vmlinux/vmlinux.h.tmp vmlinux/vmlinux.h

clean:
	$(Q)rm -rf $(B)

-include $(shell find $(B) -name '*.d' 2>/dev/null)
