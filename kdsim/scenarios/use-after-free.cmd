* Written after the free: the solution, step by step
.lab
* The settings the machine booted with
.verifier
* Let the machine run until it stops, and read the analysis
g
!analyze -v
* What is left at the address the store hit
!pool poi(nt!KiBugCheckData+8)
k
.check pktmon
