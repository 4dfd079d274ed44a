* A tour of the pool (seed case 3): the solution, step by step
.lab
* 1. Paged and nonpaged pool, and the tags that use each
!vm
!poolused /t5 2
!poolused /t5 4
* 2. DrvC's small paged block and the page it shares with other tags
!poolfind CcPg 1 -x "!pool @$extret"
* 3. Its _POOL_HEADER, the 0x10 bytes before the address !poolfind gives
!poolfind CcPg 1 -x "dt nt!_POOL_HEADER @$extret-10"
* 4. The tag in memory: 'C' 'c' 'P' 'g' in order; read as a number, reversed ('gPcC' in C)
!poolfind CcPg 1 -x "db @$extret-10 L10"
!poolfind CcPg 1 -x "dd @$extret-10 L4"
* 5. Processor 0's lookaside list of 0xF0-byte nonpaged blocks, where DrvC's CcCc blocks go back: KPRCB+0x880 holds PPNPagedLookasideList[32] as {P, L} pairs, [14] is 15 x 16 bytes
!lookaside poi(poi(nt!KiProcessorBlock)+880+e*10)
* 6. The header checks on CcPg's page
!poolfind CcPg 1 -x "!poolval @$extret"
* All of DrvC's tags, small and large
!poolfind Cc*
!poolfind CcBf -x "!pool @$extret"
.check CcBf
