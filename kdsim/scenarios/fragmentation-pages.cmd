* Pool fragmentation, the fix: the solution, step by step
.lab
* What the memory manager says nonpaged pool holds
!vm
* What the tags account for: the TOTAL's NonPaged Used (bytes) against !vm's pages
!poolused /t5 2
* The driver's tag: its blocks are whole pages now
!poolused 2 MmCm
.check MmCm
