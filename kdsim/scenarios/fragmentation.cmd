* Pool fragmentation (seed case 1): the solution, step by step
.lab
* What the memory manager says nonpaged pool holds
!vm
* What the tags account for: compare the NonPaged Used TOTAL (bytes) with NonPagedPool Usage (pages)
!poolused /t5 2
* The tag asking for almost a page at a time
!poolused 2 MmCm
.check MmCm
