# vsdrv script: the I/O corpus run against C vhost_scsi and tcm_virt.
# Target 1 = tpgt_1; LUN 0 = a 64 MiB rd_mcp disk, LUN 1 not mapped.
# Lines marked 'differs:' are the documented differences
# (Documentation/differences.rst); the test checks tcm_virt's answer there.
lun 1 0
tur
inquiry 36
inquiry 96
vpd 0x00
vpd 0xb0
report-luns
readcap16
readcap10
write10 0 8 1
read10 0 8 1
write16 1000 64 2
read16 1000 64 2
write10 8 2048 3
read10 8 2048 3
# Transfers around the scatterlist's chunk boundaries (16 entries in the
# command, then chunks of 128 chained): 15, 16, 17, 142, 143 and 2048 pages
# (the most one command may map).
write10 20000 120 4
read10 20000 120 4
write10 20200 128 5
read10 20200 128 5
write10 20400 136 6
read10 20400 136 6
write10 21000 1136 7
read10 21000 1136 7
write10 23000 1144 8
read10 23000 1144 8
write10 32768 16384 9
read10 32768 16384 9
read10 0 8 1
sync
unmap 0 8
cdb 1a003f00fc00 in 252              # MODE SENSE(6), all pages
cdb 5e0000000000000000ff in 255      # PERSISTENT RESERVE IN, READ KEYS
cdb 28000001000000000800 in 512      # READ(10) 8 blocks into a 512-byte buffer
cdb 2a00000186a000000100 out 4096 # WRITE(10) 1 block from a 4096-byte buffer
cdb 28000001869f00000100 out 512     # a READ with data-out buffers
cdb ff00000000000000 in 16           # an unknown opcode
cdb 280000ffffff00000100 in 512      # READ beyond the last LBA
lun 1 1
tur
inquiry 36
read10 0 1 1
lun 1 16383
tur
lun 7 0
tur                                   # no TPG with tag 7: BAD_TARGET
lun 1 0
bad short-header
bad lun-format
bad cdb-too-long
bad split-header
bad split-resp
bad resp-with-data
bad both-dirs
tmf 5                                 # LOGICAL UNIT RESET (both perform it)
tmf 0 1                               # differs: ABORT TASK, C rejects it
tmf 4                                 # differs: I_T NEXUS RESET, C rejects it
an-query
an-subscribe
ctl-short
lun 7 0
tmf 5                                 # TMF to a target without TPG
lun 1 0
bad huge                              # differs: answered, C drops it
bad short-resp                        # differs: returned, C keeps it
bad no-resp                           # differs: returned, C keeps it
ctl-unknown                           # differs: returned, C keeps it
bad unpinnable                        # differs: answered, C drops it
tur                                   # the unit attention of the LUN RESET
read10 0 8 1
