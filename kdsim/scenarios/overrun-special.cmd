* The innocent driver, caught: the solution, step by step
.lab
* The settings the machine booted with
.verifier
* Let the machine run until it stops
g
!analyze -v
* The other drivers' buffers stay in normal pool, where no guard page follows them
!poolfind BBBB 0
.check DrvA
