* Nonpaged pool is empty: the solution, step by step
.lab
* How full nonpaged pool is, and how many allocations it refused
!vm
* What holds it
!poolused /t5 2
* Break in at the next allocation or free of the top tag, SmbF, and see who asks
ed nt!PoolHitTag 'FbmS'
g
k
.check smbflt
