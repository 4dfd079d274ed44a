* In front of the block: the solution, step by step
.lab
* The settings the machine booted with: special pool, verify start
.verifier
* Let the machine run until it stops, and read the analysis
g
!analyze -v
k
.check usbhubx
