# Reloc test guest: a BIOS program that proves "no guest-visible error and no lost write".
#
# Boots from the first disk (sector 0 is the boot sector, the rest of the program follows it), then
# loops for ever, k = 1, 2, 3, ...:
#   write pattern(k) to sector(k & (SLOTS-1))                   INT 13h AH=43h (extended write)
#   ATA FLUSH CACHE on the primary master                       (QEMU turns it into an NBD FLUSH)
#   read that sector back and compare                           INT 13h AH=42h (extended read)
#   read an older sector sector((k-d) & (SLOTS-1)), 1 <= d < SLOTS, and compare with pattern(k-d):
#     no write since k-d touched that slot, so it must still hold what k-d wrote, or, for k-d <= 0,
#     zeros: no round has written that slot yet and the image is sparse, so it is a hole
#   print "k=<k>" on COM1
# Any failure prints one line "ERR ..." and halts ("found k=0" is a sector of zeros where a pattern was
# expected: a lost write). Nothing is random: the test computes the expected image from the last k it
# finds on the disk.
#
# The slots are spread over the whole disk past the program, so that a disk relocated while the guest
# runs is mostly holes at first and the guest keeps writing into blocks that were holes:
#   place p = (SPREAD_A * slot + SPREAD_B) mod SLOTS             (SPREAD_A odd: a permutation of the slots)
#   sector(slot) = FIRST + p * STRIDE + ((p * OFFSET_MUL) mod STRIDE)
# Consecutive slots land far apart, and the sector a slot uses moves around inside its STRIDE sectors, so
# the slots sharing a relocation block write different sectors of it.
#
# pattern(k), 128 little-endian dwords: [0] = 'RLOC' (0x434F4C52), [1] = k (32-bit two's complement),
# [i >= 2] = x_i with x_1 = k ^ 0x9E3779B9, x_i = x_{i-1} * 1664525 + 1013904223 (mod 2^32).
#
# Assembled at test time (Guest.cs passes the layout):
#   as --32 --defsym SLOTS=n --defsym FIRST=s --defsym STRIDE=t --defsym SPREAD_A=a --defsym SPREAD_B=b
#      --defsym OFFSET_MUL=m guest.S -o guest.o &&
#   ld -m elf_i386 -Ttext=0x7c00 --oformat binary guest.o -o guest.bin
# SLOTS and STRIDE must be powers of two.

        .intel_syntax noprefix
        .code16

        .set COM1, 0x3f8
        .set WBUF, 0x6000               # pattern buffer (512 bytes)
        .set RBUF, 0x6200               # read buffer (512 bytes)
        .set ATA_STATUS, 0x1f7          # primary channel: status (read) / command (write)
        .set ATA_DRIVE, 0x1f6

        .text
        .globl _start
_start:
        cli
        xor ax, ax
        mov ds, ax
        mov es, ax
        mov ss, ax
        mov sp, 0x7c00
        ljmp 0, offset boot             # CS = 0 whatever the BIOS used
boot:
        sti
        cld
        mov [drive], dl
        # Load the rest of the program right after the boot sector.
        mov word ptr [dap_count], (program_end - stage2 + 511) / 512
        mov word ptr [dap_offset], offset stage2
        mov dword ptr [dap_lba], 1
        mov si, offset dap
        mov ah, 0x42
        int 0x13
        jc boot_fail
        jmp stage2
boot_fail:
        mov si, offset msg_boot_fail
        call puts
        jmp halt

# ---- helpers used by both stages (kept in the boot sector) ----

# putc: AL -> COM1 (waits for the transmitter holding register)
putc:
        push dx
        push ax
        mov dx, COM1 + 5
1:      in al, dx
        test al, 0x20
        jz 1b
        pop ax
        mov dx, COM1
        out dx, al
        pop dx
        ret

# puts: zero-terminated string at DS:SI
puts:
        push ax
        push si
1:      lodsb
        test al, al
        jz 2f
        call putc
        jmp 1b
2:      pop si
        pop ax
        ret

halt:
        mov si, offset msg_halt
        call puts
        cli
1:      hlt
        jmp 1b

msg_boot_fail: .asciz "ERR boot: cannot load stage 2\r\n"
msg_halt:      .asciz "HALT\r\n"

        .balign 4
dap:                                    # INT 13h extensions disk address packet
        .byte 16, 0
dap_count:  .word 1
dap_offset: .word 0
dap_seg:    .word 0
dap_lba:    .long 0, 0
drive:      .byte 0

        .org 510
        .word 0xaa55

# ================= stage 2 (sector 1 on) =================
stage2:
        mov si, offset msg_start
        call puts
        # INT 13h extensions present?
        mov ah, 0x41
        mov bx, 0x55aa
        mov dl, [drive]
        int 0x13
        jc no_ext
        cmp bx, 0xaa55
        jne no_ext
        test cx, 1
        jz no_ext
        mov si, offset msg_ready
        call puts
        mov dword ptr [k], 0

loop_top:
        inc dword ptr [k]

        # ---- write pattern(k) to slot(k) and flush ----
        mov eax, [k]
        call fill
        mov eax, [k]
        mov [lba_k], eax
        mov word ptr [dap_offset], WBUF
        call set_lba
        mov ah, 0x43
        mov al, 0
        call disk_io
        jc err_write
        call ata_flush
        jc err_flush

        # ---- read it back ----
        mov word ptr [dap_offset], RBUF
        mov eax, [k]
        call set_lba
        mov ah, 0x42
        call disk_io
        jc err_read
        call compare
        jne err_verify

        # ---- re-read an older slot: k - d, 1 <= d < SLOTS ----
        mov eax, [k]
        imul eax, eax, 0x9e3779b1
        shr eax, 8
        and eax, SLOTS - 1
        inc eax
        cmp eax, SLOTS
        jb 1f
        mov eax, SLOTS - 1
1:      mov ebx, [k]
        sub ebx, eax
        mov [lba_k], ebx
        mov eax, ebx
        call fill
        mov eax, [lba_k]
        mov word ptr [dap_offset], RBUF
        call set_lba
        mov ah, 0x42
        call disk_io
        jc err_read_old
        call compare
        jne err_verify_old

        # ---- progress ----
        mov si, offset msg_k
        call puts
        mov eax, [k]
        call putdec
        mov si, offset msg_crlf
        call puts
        jmp loop_top

no_ext:
        mov si, offset msg_no_ext
        call puts
        jmp halt

err_write:
        mov si, offset msg_err_write
        jmp err_with_status
err_read:
        mov si, offset msg_err_read
        jmp err_with_status
err_read_old:
        mov si, offset msg_err_read_old
err_with_status:                        # AH = INT 13h status
        mov [status], ah
        call puts
        mov eax, [lba_k]
        call putdec
        mov si, offset msg_status
        call puts
        movzx eax, byte ptr [status]
        call putdec
        jmp err_tail
err_flush:                              # AL = ATA status
        mov [status], al
        mov si, offset msg_err_flush
        call puts
        mov eax, [k]
        call putdec
        mov si, offset msg_status
        call puts
        movzx eax, byte ptr [status]
        call putdec
        jmp err_tail
err_verify:
        mov si, offset msg_err_verify
        jmp err_mismatch
err_verify_old:
        mov si, offset msg_err_verify_old
err_mismatch:                           # what the sector held instead: its k and first differing dword
        call puts
        mov eax, [lba_k]
        call putdec
        mov si, offset msg_found
        call puts
        mov eax, [RBUF + 4]
        call putdec
        mov si, offset msg_at
        call puts
        movzx eax, word ptr [mismatch]
        call putdec
err_tail:
        mov si, offset msg_at_k
        call puts
        mov eax, [k]
        call putdec
        mov si, offset msg_crlf
        call puts
        jmp halt

# set_lba: EAX = k -> dap_lba = sector(k & (SLOTS-1)) (see the header), one sector; clobbers EDX
set_lba:
        and eax, SLOTS - 1
        imul eax, eax, SPREAD_A
        add eax, SPREAD_B
        and eax, SLOTS - 1              # p
        mov edx, eax
        imul edx, edx, OFFSET_MUL
        and edx, STRIDE - 1             # the sector inside the place
        imul eax, eax, STRIDE
        add eax, edx
        add eax, FIRST
        mov [dap_lba], eax
        mov dword ptr [dap_lba + 4], 0
        mov word ptr [dap_count], 1
        mov word ptr [dap_seg], 0
        ret

# disk_io: AH = 42h/43h (AL = 0), on the boot drive with the DAP; CF and AH as the BIOS returns them
disk_io:
        mov dl, [drive]
        mov si, offset dap
        int 0x13
        ret

# fill: EAX = k -> WBUF = pattern(k), or zeros for k <= 0 (a slot no round has written yet is a hole)
fill:
        push di
        mov di, WBUF
        test eax, eax
        jg 2f
        xor eax, eax
        mov cx, 128
        rep stosd                       # ES:DI, ES = 0
        pop di
        ret
2:      mov dword ptr [di], 0x434f4c52
        mov [di + 4], eax
        xor eax, 0x9e3779b9
        mov cx, 126
        add di, 8
1:      imul eax, eax, 1664525
        add eax, 1013904223
        mov [di], eax
        add di, 4
        loop 1b
        pop di
        ret

# compare: ZF set when RBUF == WBUF; else [mismatch] = index of the first differing dword
compare:
        push si
        push di
        mov si, WBUF
        mov di, RBUF
        mov cx, 128
        repe cmpsd
        je 1f
        mov ax, 127
        sub ax, cx
        mov [mismatch], ax
        or ax, 1                        # ZF clear
1:      pop di
        pop si
        ret

# ata_flush: FLUSH CACHE (E7h) to the primary master; CF set on error with AL = status
ata_flush:
        push dx
        mov dx, ATA_STATUS
1:      in al, dx                       # wait while busy
        test al, 0x80
        jnz 1b
        mov dx, ATA_DRIVE
        mov al, 0xa0                    # master
        out dx, al
        mov dx, ATA_STATUS
2:      in al, dx
        test al, 0x80
        jnz 2b
        mov al, 0xe7
        out dx, al
3:      in al, dx
        test al, 0x80
        jnz 3b
        test al, 0x21                   # ERR or DF
        jz 4f
        pop dx
        stc
        ret
4:      pop dx
        clc
        ret

# putdec: EAX as signed decimal on COM1
putdec:
        push eax
        push ebx
        push ecx
        push edx
        test eax, eax
        jns 1f
        push ax
        mov al, '-'
        call putc
        pop ax
        neg eax
1:      mov ebx, 10
        xor cx, cx
2:      xor edx, edx
        div ebx
        push dx
        inc cx
        test eax, eax
        jnz 2b
3:      pop ax
        add al, '0'
        call putc
        loop 3b
        pop edx
        pop ecx
        pop ebx
        pop eax
        ret

msg_start:          .asciz "\r\nRELOC-GUEST boot\r\n"
msg_ready:          .asciz "RELOC-GUEST ready\r\n"
msg_no_ext:         .asciz "ERR no INT 13h extensions\r\n"
msg_k:              .asciz "k="
msg_crlf:           .asciz "\r\n"
msg_err_write:      .asciz "ERR write k="
msg_err_read:       .asciz "ERR read-back k="
msg_err_read_old:   .asciz "ERR read-old k="
msg_err_flush:      .asciz "ERR flush k="
msg_err_verify:     .asciz "ERR verify k="
msg_err_verify_old: .asciz "ERR verify-old k="
msg_status:         .asciz " status="
msg_found:          .asciz " found k="
msg_at:             .asciz " dword="
msg_at_k:           .asciz " at k="

        .balign 4
k:          .long 0
lba_k:      .long 0
mismatch:   .word 0
status:     .byte 0
        .balign 512
program_end:
