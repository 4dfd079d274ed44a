* Freed twice: the solution, step by step
.lab
* Let the machine run until it stops, and read the analysis
g
!analyze -v
* Pool tracking on the three suspects: each of their frees is checked at once
.verifier /flags 0x8 /driver dkcache.sys stflt.sys volsnapx.sys
.reboot
g
!analyze -v
k
.check stflt
