/*
 * A small AML (ACPI Machine Language) encoder writing into a caller buffer.
 *
 * Constructs that carry a PkgLength (Scope, Device, Method, Package,
 * Buffer, ResourceTemplate, Field, If, While) are opened by one call and closed by aml_end();
 * lengths, package element counts and buffer sizes are filled in on close,
 * always in their shortest encoding (the same bytes iasl would emit).
 *
 * Errors are sticky: after any failure (buffer full, invalid name or
 * string, unbalanced aml_end, descriptor outside a ResourceTemplate, ...)
 * every later call is a no-op and aml_finish() returns 0, so callers can
 * emit a whole tree and check once.
 *
 * Example (ASL in comments):
 *   aml_scope(&a, "\\_SB_");                  // Scope (\_SB) {
 *   aml_device(&a, "COM1");                   //   Device (COM1) {
 *   aml_name(&a, "_HID"); aml_eisaid(&a, "PNP0501");
 *   aml_name(&a, "_CRS"); aml_restemplate(&a);
 *   aml_res_io(&a, 0x3f8, 0x3f8, 1, 8);
 *   aml_end(&a);                              //   ResourceTemplate done
 *   aml_end(&a); aml_end(&a);                 // } }
 *   size_t n = aml_finish(&a);
 */
#ifndef NIMBUS_ACPI_AML_H
#define NIMBUS_ACPI_AML_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define AML_MAX_DEPTH 16

struct aml_frame {
    size_t start;   /* offset of the reserved PkgLength */
    size_t body;    /* offset where the body begins */
    uint32_t count; /* data objects emitted directly inside (Package) */
    uint8_t kind;
};

struct aml {
    uint8_t *buf;
    size_t cap;
    size_t len;
    bool err;
    unsigned depth;
    struct aml_frame frames[AML_MAX_DEPTH];
};

void aml_init(struct aml *a, uint8_t *buf, size_t cap);
/* Length written, or 0 on any error or if a construct is still open. */
size_t aml_finish(struct aml *a);

/*
 * Names are ASL-style paths: an optional "\" (root) or "^" prefixes, then
 * '.'-separated segments of 1-4 characters [A-Z0-9_] not starting with a
 * digit; short segments are padded with '_' ("_SB" == "_SB_").
 */
bool aml_name_valid(const char *path);

/* Name (path, <next data object>) */
void aml_name(struct aml *a, const char *path);
/* Scope (path) { ... aml_end } */
void aml_scope(struct aml *a, const char *path);
/* Device (path) { ... aml_end } */
void aml_device(struct aml *a, const char *path);
/* Method (path, nargs, [Not]Serialized) { ... aml_end } */
void aml_method(struct aml *a, const char *path, unsigned nargs, bool serialized);
/* Return (<next term>) */
void aml_return(struct aml *a);

/*
 * Operators for method bodies.  Like aml_return they emit only the opcode:
 * the caller emits the operands that follow, in order.
 */
/* If (<predicate: next term>) { ... aml_end } */
void aml_if(struct aml *a);
/* While (<predicate: next term>) { ... aml_end } */
void aml_while(struct aml *a);
/* LEqual / LLess (<operand>, <operand>): ASL `==` and `<`. */
void aml_lequal(struct aml *a);
void aml_lless(struct aml *a);
/* Mutex (name, sync_level 0-15); Acquire (mutex, timeout in ms, 0xFFFF =
 * forever) and Release (mutex) as complete statements. */
void aml_mutex(struct aml *a, const char *name, unsigned sync_level);
void aml_acquire(struct aml *a, const char *mutex, uint16_t timeout_ms);
void aml_release(struct aml *a, const char *mutex);
/* Store (<source>, <destination>), ASL `destination = source` */
void aml_store(struct aml *a);
/* And (<operand>, <operand>, <target>) */
void aml_and(struct aml *a);
/* Notify (<object>, <value>) */
void aml_notify(struct aml *a);
/* The empty target of an operator whose result is only used in place. */
void aml_null_target(struct aml *a);

/* OperationRegion (name, space, offset, len); I/O regions stay in 0-0xFFFF. */
enum aml_region_space { AML_REGION_SYSTEM_MEMORY = 0, AML_REGION_SYSTEM_IO = 1 };
void aml_operation_region(struct aml *a, const char *name, enum aml_region_space space,
                          uint64_t offset, uint64_t len);

/*
 * Field (region, flags) { aml_field_unit ... aml_end }.  flags: one access
 * type, one lock rule and one update rule below, ORed.
 */
#define AML_FIELD_ANY_ACC 0x00u
#define AML_FIELD_BYTE_ACC 0x01u
#define AML_FIELD_WORD_ACC 0x02u
#define AML_FIELD_DWORD_ACC 0x03u
#define AML_FIELD_QWORD_ACC 0x04u
#define AML_FIELD_BUFFER_ACC 0x05u
#define AML_FIELD_LOCK 0x10u
#define AML_FIELD_PRESERVE 0x00u
#define AML_FIELD_WRITE_AS_ONES 0x20u
#define AML_FIELD_WRITE_AS_ZEROS 0x40u
void aml_field(struct aml *a, const char *region, uint8_t flags);
/* A named field unit of `bits` bits (one NameSeg, e.g. "GDAT"), inside a Field. */
void aml_field_unit(struct aml *a, const char *name, uint32_t bits);
/* Close the innermost open construct. */
void aml_end(struct aml *a);

/* Data objects (each counts as one element inside a Package). */
void aml_integer(struct aml *a, uint64_t v);
void aml_string(struct aml *a, const char *s);
/* EisaId ("PNP0501"): 3 letters + 4 hex digits, compressed to 32 bits. */
void aml_eisaid(struct aml *a, const char *id);
/* A reference to a named object. */
void aml_namepath(struct aml *a, const char *path);
/* Method argument ArgN (0-6) and local variable LocalN (0-7). */
void aml_arg(struct aml *a, unsigned n);
void aml_local(struct aml *a, unsigned n);
/* Package () { ... aml_end }, up to 255 elements. */
void aml_package(struct aml *a);
/* Buffer () { aml_bytes ... aml_end } */
void aml_buffer(struct aml *a);
void aml_bytes(struct aml *a, const void *p, size_t n);

/* Compressed EISA ID value; false if id is not "LLLhhhh". */
bool aml_eisaid_value(const char *id, uint32_t *out);

/* ResourceTemplate () { aml_res_* ... aml_end }: End Tag added on close. */
void aml_restemplate(struct aml *a);
/*
 * For descriptor emitters: true if the innermost open construct is a
 * ResourceTemplate; otherwise (or after an error) false, with the error set.
 */
bool aml_in_restemplate(struct aml *a);
/* IO (Decode16, min, max, align, len) */
void aml_res_io(struct aml *a, uint16_t min, uint16_t max, uint8_t align, uint8_t len);
/* IRQNoFlags () {irq}: ISA IRQ 0-15, edge, active high. */
void aml_res_irq_noflags(struct aml *a, uint8_t irq);
/* Interrupt (ResourceConsumer, Edge|Level, ActiveHigh|Low, Exclusive|Shared) {gsi} */
void aml_res_interrupt(struct aml *a, uint32_t gsi, bool level, bool active_low, bool shared);
/* Memory32Fixed (ReadWrite|ReadOnly, base, len) */
void aml_res_memory32_fixed(struct aml *a, bool writable, uint32_t base, uint32_t len);

/*
 * Word/DWord/QWord Address Space descriptors.  The helpers below describe
 * a bridge window: ResourceProducer, PosDecode, MinFixed, MaxFixed,
 * granularity 0, translation 0, length max - min + 1.
 */
enum aml_addr_type { AML_ADDR_MEMORY = 0, AML_ADDR_IO = 1, AML_ADDR_BUS = 2 };
struct aml_addr_space {
    uint8_t type;       /* enum aml_addr_type */
    bool consumer;      /* ResourceConsumer (else ResourceProducer) */
    bool min_fixed, max_fixed;
    uint8_t type_flags; /* type-specific flags byte */
    uint64_t granularity, min, max, translation, length;
};
/* width: 2 (Word), 4 (DWord) or 8 (QWord); values must fit the width. */
void aml_res_address(struct aml *a, unsigned width, const struct aml_addr_space *r);
/* WordBusNumber (ResourceProducer, MinFixed, MaxFixed, PosDecode, ...) */
void aml_res_word_bus_number(struct aml *a, uint16_t min, uint16_t max);
/* WordIO (ResourceProducer, MinFixed, MaxFixed, PosDecode, EntireRange, ...) */
void aml_res_word_io(struct aml *a, uint16_t min, uint16_t max);
/* DWordMemory / QWordMemory (ResourceProducer, PosDecode, MinFixed,
 * MaxFixed, NonCacheable|Prefetchable, ReadWrite, ...) */
void aml_res_dword_memory(struct aml *a, uint32_t min, uint32_t max, bool prefetchable);
void aml_res_qword_memory(struct aml *a, uint64_t min, uint64_t max, bool prefetchable);

#endif
